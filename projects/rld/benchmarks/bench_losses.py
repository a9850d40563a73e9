"""RLD loss, forward + backward: ours vs the official formulation, side by side in one process.

    OMP_NUM_THREADS=1 uv run benchmarks/bench_losses.py [--repeats 15] [--out results/bench.json]

The official formulation is written here from the spec (``/work/shared/specs/rld.md``: official
``mdistiller/distillers/RLD.py``, ``rld_loss`` + ``RLD.forward_train``): binary distributions from
``softmax`` summed under boolean masks, ``torch.log`` of them, ``F.kl_div(..., reduction='batchmean')``,
``masked_fill(mask, -1e9)`` for MCD, and the CE added outside with its weight. It is the comparison
reference only; nothing here is used for training.

Each size runs both implementations on the same logits, interleaved (ABAB...), ``--repeats`` timed blocks
each of ``--calls`` forward + backward calls; the figures are the median time per call and the median
over repeats of the ratio ours / official of adjacent blocks (robust to a shared machine's changing load).
It also checks the numerics: float64 agreement with the official formulation, and finiteness where the
official one is not (underflowing student probabilities).
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
import torch.nn.functional as F

from rld.losses import rld_loss

SIZES = ((64, 100), (512, 1000))  # CIFAR-100 batch 64; ImageNet batch 512
CONFIG = dict(ce_weight=1.0, alpha=1.0, beta=8.0, alpha_temperature=1.0, temperature=4.0, warmup=20)


# ---- the official formulation (comparison reference, written from the spec) ---------------------------
def _index_masks(logits: torch.Tensor, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    one = torch.zeros_like(logits).scatter_(1, index.unsqueeze(1), 1).bool()
    rest = torch.ones_like(logits).scatter_(1, index.unsqueeze(1), 0).bool()
    return one, rest


def _two_bins(p: torch.Tensor, one: torch.Tensor, rest: torch.Tensor) -> torch.Tensor:
    return torch.cat([(p * one).sum(dim=1, keepdim=True), (p * rest).sum(dim=1, keepdim=True)], dim=1)


def official_rld(zs: torch.Tensor, zt: torch.Tensor, y: torch.Tensor, epoch: float, *, ce_weight: float,
                 alpha: float, beta: float, alpha_temperature: float, temperature: float,
                 warmup: float) -> torch.Tensor:
    """CE_WEIGHT * CE + min(epoch / WARMUP, 1) * (alpha * SCD + beta * MCD), the official way."""
    ce = ce_weight * F.cross_entropy(zs, y)
    # SCD: student's ground-truth bin vs the teacher's max bin
    s_one, s_rest = _index_masks(zs, y)
    t_one, t_rest = _index_masks(zt, zt.argmax(dim=1))
    b_s = _two_bins(F.softmax(zs / alpha_temperature, dim=1), s_one, s_rest)
    b_t = _two_bins(F.softmax(zt / alpha_temperature, dim=1), t_one, t_rest)
    scd = F.kl_div(torch.log(b_s), b_t, reduction="batchmean") * alpha_temperature**2
    # MCD: the teacher's >= ground-truth mask on both networks
    mask = zt >= zt.gather(1, y.unsqueeze(1))
    log_p_s = F.log_softmax((zs / temperature).masked_fill(mask, -1e9), dim=1)
    p_t = F.softmax((zt / temperature).masked_fill(mask, -1e9), dim=1)
    mcd = F.kl_div(log_p_s, p_t, reduction="batchmean") * temperature**2
    return ce + min(epoch / warmup, 1.0) * (alpha * scd + beta * mcd)


def ours(zs, zt, y, epoch, **kw):
    return rld_loss(zs, zt, y, epoch, **kw)


# ---- timing -------------------------------------------------------------------------------------------
def time_block(fn, zs, zt, y, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn(zs, zt, y, 30, **CONFIG).backward()
        zs.grad = None
    return (time.perf_counter() - start) / calls


def bench_size(batch: int, classes: int, repeats: int, calls: int) -> dict:
    g = torch.Generator().manual_seed(0)
    zs = (torch.randn(batch, classes, generator=g) * 3).requires_grad_(True)
    zt = torch.randn(batch, classes, generator=g) * 3
    y = torch.randint(0, classes, (batch,), generator=g)
    for fn in (ours, official_rld):  # warm-up
        time_block(fn, zs, zt, y, max(1, calls // 4))
    t_ours, t_off = [], []
    for r in range(repeats):
        pair = ((ours, t_ours), (official_rld, t_off))
        for fn, out in pair if r % 2 == 0 else pair[::-1]:
            out.append(time_block(fn, zs, zt, y, calls))
    med_ours, med_off = statistics.median(t_ours), statistics.median(t_off)
    pairs = [a / b for a, b in zip(t_ours, t_off)]  # adjacent blocks: robust to the machine's load drifting
    return {"batch": batch, "classes": classes, "repeats": repeats, "calls_per_repeat": calls,
            "ours_us": med_ours * 1e6, "official_us": med_off * 1e6, "ratio": statistics.median(pairs),
            "ratio_of_medians": med_ours / med_off, "ratio_per_repeat": pairs}


# ---- numerics -----------------------------------------------------------------------------------------
def numerics() -> dict:
    g = torch.Generator().manual_seed(1)
    zs = (torch.randn(64, 100, generator=g, dtype=torch.float64) * 3).requires_grad_(True)
    zt = torch.randn(64, 100, generator=g, dtype=torch.float64) * 3
    y = torch.randint(0, 100, (64,), generator=g)
    a = ours(zs, zt, y, 30, **CONFIG)
    (ga,) = torch.autograd.grad(a, zs)
    b = official_rld(zs, zt, y, 30, **CONFIG)
    (gb,) = torch.autograd.grad(b, zs)
    # float32 logits where the student's ground-truth probability underflows: official log(0) = -inf
    zs_u = torch.tensor([[-200.0, 200.0, 0.0], [300.0, -300.0, 0.0]], requires_grad=True)
    zt_u = torch.tensor([[0.0, 500.0, -500.0], [-400.0, 400.0, 0.0]])
    y_u = torch.tensor([0, 1])
    under = {}
    for name, fn in (("ours", ours), ("official", official_rld)):
        value = fn(zs_u, zt_u, y_u, 30, **CONFIG)
        (grad,) = torch.autograd.grad(value, zs_u)
        finite = bool(torch.isfinite(value) and torch.isfinite(grad).all())
        under[name] = {"loss": float(value.detach()), "finite": finite}
    return {"float64_abs_diff_loss": abs(float((a - b).detach())),
            "float64_max_abs_diff_grad": float((ga - gb).abs().max()), "underflow_case": under}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=25)
    parser.add_argument("--calls", type=int, default=0, help="calls per timed block (0: by size)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "results" / "bench.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, repeats {args.repeats}")
    rows, sizes = [], []
    for batch, classes in SIZES:
        calls = args.calls or (200 if batch * classes < 100_000 else 10)
        res = bench_size(batch, classes, args.repeats, calls)
        sizes.append(res)
        print(f"B={batch:4d} C={classes:5d}: ours {res['ours_us']:9.1f} us, official {res['official_us']:9.1f} us, "
              f"ours/official {res['ratio']:.2f}")
        rows.append([f"B={batch}, C={classes}", res["ours_us"], res["official_us"], res["ratio"]])
    num = numerics()
    print(f"float64 |ours - official|: loss {num['float64_abs_diff_loss']:.2e}, "
          f"grad {num['float64_max_abs_diff_grad']:.2e}")
    print(f"underflowing float32 case: {num['underflow_case']}")
    result = {
        "benchmark": "RLD loss (CE + SCD + MCD, official defaults), forward + backward, CPU",
        "torch": torch.__version__, "threads": torch.get_num_threads(), "machine": platform.machine(),
        "sizes": sizes, "numerics": num,
        "tables": {"rld_loss": {
            "columns": ["logits", "ours (µs)", "official (µs)", "ours / official"], "rows": rows,
            "floatfmt": ".2f"}},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
