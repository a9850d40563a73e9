"""ODE solvers, final sample only: ours vs the official formulation, side by side in one process.

    OMP_NUM_THREADS=1 uv run benchmarks/bench_solvers.py [--repeats 15] [--out results/bench.json]

The official Euler, Heun and DPM-Solver-2 loops are written here from the spec and the official
``sfd-main/solvers.py`` facts (``/work/shared/specs/sfd.md``): per step ``d = (x - D(x, t)) / t`` and
``x_next = x + (t_next - t) * d`` (DPM-2: an Euler half step to ``t_mid = t_next^r t^(1-r)``, then
``x + (t_next - t) * (d_mid / 2r + (1 - 1/2r) d)``), the trajectory kept only with ``return_inters``
(off here: the final sample is what sampling wants). They are the comparison reference only. Both sides
start from the same state at ``t_0`` (the official ``latents * t_steps[0]`` scaling is left out of both)
and use the same float32 schedule.

The denoiser is the exact EDM denoiser of N(0, 0.5^2) data, ``D(x, t) = x s^2 / (s^2 + t^2)``: nearly free,
so the figure is the solver's own cost (tensor arithmetic and memory), the part a network would hide.
Our solver with ``return_trajectory=True`` (what every call did before) is timed beside them.
Each solver runs interleaved (ABC CBA ...) for ``--repeats`` timed blocks; the figures are the median time
per sampling run and the median over repeats of the ratio ours / official of adjacent blocks (robust to a
shared machine's changing load). The outputs are compared too (max |diff|).
Prints figures and writes a JSON whose ``tables`` the README renders; never asserts on time.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from sfd.solvers import gaussian_denoiser, polynomial_schedule, sample

SHAPE = (128, 3, 32, 32)  # the official CIFAR-10 batch
NUM_STEPS = 11  # timestamps: Euler 10 NFE, Heun / DPM-2 20 NFE
SIGMA_DATA = 0.5


# ---- the official formulation (comparison reference, written from the spec) ---------------------------
def official_euler(net, x_next, t_steps):
    for t_cur, t_next in zip(t_steps[:-1], t_steps[1:]):
        x_cur = x_next
        d_cur = (x_cur - net(x_cur, t_cur)) / t_cur
        x_next = x_cur + (t_next - t_cur) * d_cur
    return x_next


def official_heun(net, x_next, t_steps):
    for t_cur, t_next in zip(t_steps[:-1], t_steps[1:]):
        x_cur = x_next
        d_cur = (x_cur - net(x_cur, t_cur)) / t_cur
        x_next = x_cur + (t_next - t_cur) * d_cur
        d_prime = (x_next - net(x_next, t_next)) / t_next
        x_next = x_cur + (t_next - t_cur) * (0.5 * d_cur + 0.5 * d_prime)
    return x_next


def official_dpm2(net, x_next, t_steps, r=0.5):
    for t_cur, t_next in zip(t_steps[:-1], t_steps[1:]):
        x_cur = x_next
        d_cur = (x_cur - net(x_cur, t_cur)) / t_cur
        t_mid = (t_next**r) * (t_cur ** (1 - r))
        x_next = x_cur + (t_mid - t_cur) * d_cur
        d_prime = (x_next - net(x_next, t_mid)) / t_mid
        x_next = x_cur + (t_next - t_cur) * ((1 / (2 * r)) * d_prime + (1 - 1 / (2 * r)) * d_cur)
    return x_next


OFFICIAL = {"euler": official_euler, "heun": official_heun, "dpm2": official_dpm2}
LABELS = {"euler": "Euler (DDIM)", "heun": "Heun", "dpm2": "DPM-Solver-2"}


def timed(fn, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=25)
    parser.add_argument("--calls", type=int, default=3, help="sampling runs per timed block")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "results" / "bench.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, repeats {args.repeats}, "
          f"x {tuple(SHAPE)}, {NUM_STEPS} timestamps")
    denoise = gaussian_denoiser(SIGMA_DATA)
    x_T = torch.randn(*SHAPE, generator=torch.Generator().manual_seed(0)) * 80.0
    t_steps = polynomial_schedule(NUM_STEPS).to(x_T.dtype)
    rows, solvers = [], []
    with torch.no_grad():
        for name, official in OFFICIAL.items():
            ours_fn = lambda: sample(name, denoise, x_T, t_steps)  # noqa: E731
            off_fn = lambda: official(denoise, x_T, t_steps)  # noqa: E731
            traj_fn = lambda: sample(name, denoise, x_T, t_steps, return_trajectory=True)  # noqa: E731
            max_diff = float((ours_fn() - off_fn()).abs().max())  # also the warm-up
            traj_fn()
            t_ours, t_off, t_traj = [], [], []
            for r in range(args.repeats):
                trio = ((ours_fn, t_ours), (off_fn, t_off), (traj_fn, t_traj))
                for fn, out in trio if r % 2 == 0 else trio[::-1]:
                    out.append(timed(fn, args.calls))
            med_ours, med_off, med_traj = (statistics.median(t) for t in (t_ours, t_off, t_traj))
            ratio = statistics.median(a / b for a, b in zip(t_ours, t_off))  # adjacent blocks: robust to load drift
            traj_ratio = statistics.median(a / b for a, b in zip(t_traj, t_off))
            print(f"{LABELS[name]:>13}: ours {med_ours * 1e3:7.2f} ms, official {med_off * 1e3:7.2f} ms, "
                  f"ours/official {ratio:.2f}, max |diff| {max_diff:.1e}; trajectory kept: {traj_ratio:.2f}")
            solvers.append({"solver": name, "ours_ms": med_ours * 1e3, "official_ms": med_off * 1e3,
                            "ratio": ratio, "max_abs_diff": max_diff, "trajectory_kept_ms": med_traj * 1e3,
                            "trajectory_kept_ratio": traj_ratio,
                            "ratio_per_repeat": [a / b for a, b in zip(t_ours, t_off)]})
            rows.append([LABELS[name], med_ours * 1e3, med_off * 1e3, ratio, traj_ratio, f"{max_diff:.1e}"])
    result = {
        "benchmark": f"ODE solver, final sample only, x {list(SHAPE)}, {NUM_STEPS} timestamps, exact Gaussian "
                     "denoiser, CPU",
        "torch": torch.__version__, "threads": torch.get_num_threads(), "machine": platform.machine(),
        "repeats": args.repeats, "calls_per_repeat": args.calls, "solvers": solvers,
        "tables": {"solvers": {
            "columns": ["solver", "ours (ms)", "official (ms)", "ours / official",
                        "ours with the trajectory kept / official", "max abs diff"], "rows": rows,
            "floatfmt": ".2f"}},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
