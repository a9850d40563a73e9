"""Reproduce the claims at CPU scale: HeTRoM and the sg rules vs MAML, a tail-risk and a reweighting baseline.

    uv run reproduce.py                       # sinusoid, four settings, 5 seeds -> results/sinusoid.json + figure
    uv run reproduce.py --experiment fewshot  # glyph 5-way 1-shot counterpart -> results/fewshot.json

Sinusoid (MAML's regression benchmark, Finn et al. 2017, Sec. 5.1) in four training settings, tested on the
same 1,000 clean tasks: ``clean``; ``contaminated`` (noisy and outlier tasks); ``easy`` (half of the tasks
have a small amplitude -- the abstract's "easy tasks overwhelming the meta-learner"); ``mixed`` (all three).
Hyper-parameters that a method has (HeTRoM's ``m, k``, CVaR's ``alpha``) are chosen per seed and setting on
500 held-out clean validation tasks, never from the known contamination rates. Every method of a (seed,
setting) starts from the same initialisation and sees the same meta-batches, for the same number of
meta-iterations (same budget). 95% confidence intervals are over the test tasks (per task, the mean over
seeds), for the MSE and for its paired difference to MAML.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from hetrom import sweep
from hetrom.sweep import Member, Rule, SweepConfig
from hetrom.weighting import cvar_k
from shared.data.sinusoid import SinusoidFamily
from shared.runs import RunDir, package_versions, progress, seed_everything

RESULTS = Path(__file__).resolve().parents[2] / "results"

SETTINGS: dict[str, tuple[str, SinusoidFamily]] = {
    "clean": ("no contamination", SinusoidFamily()),
    "contaminated": ("20% noisy + 10% outlier tasks", SinusoidFamily(noisy_rate=0.2, outlier_rate=0.1)),
    "easy": ("50% easy tasks (A ~ U[0.1, 0.5])", SinusoidFamily(easy_rate=0.5)),
    "mixed": ("30% easy + 15% noisy + 10% outlier", SinusoidFamily(easy_rate=0.3, noisy_rate=0.15, outlier_rate=0.1)),
}
# HeTRoM's grid of (m, n - k): drop the m largest and the n - k smallest task losses of a meta-batch of n = 25.
# (0, 0) is MAML and not part of the grid; (0, 7) and (0, 12) are CVaR-MAML with alpha = 0.3 and 0.5.
GRID = ((4, 0), (8, 0), (0, 7), (4, 7), (0, 12))
CVAR_ALPHAS = (0.3, 0.5)  # CVaR-MAML's alpha grid: k = ceil((1 - alpha) n) = 18, 13 for n = 25

MAML, HETROM, CVAR = "MAML", "HeTRoM (m, k on validation)", "CVaR-MAML (α on validation)"
SG_BATCH = "sg-HeTRoM, batch log-statistics (our v1 guess)"
SG_VAL = "sg, AoRR's rule on validation losses"
SG_WIDE = "sg, AoRR's rule with the upper cut at μ+3σ (ours)"
REWEIGHT = "task reweighting (L2RW)"
CLEAN_REF = "clean reference (MAML on clean tasks)"
SG_WIDE_UPPER = 3.0  # ours: AoRR's validation statistics, upper cut at mean + 3 std instead of mean + 1 std


def sinusoid_members(seeds: list[int], settings: list[str], n: int) -> list[Member]:
    """Every (seed, setting): MAML, HeTRoM's grid (CVaR-MAML's alphas are its m = 0 points), three sg rules and
    task reweighting."""
    out = []
    for seed in seeds:
        for s in settings:
            out.append(Member(MAML, s, seed, Rule("rank", m=0, k=n)))
            out += [Member(HETROM, s, seed, Rule("rank", m=m, k=n - d), f"m={m} k={n - d}") for m, d in GRID]
            out.append(Member(SG_BATCH, s, seed, Rule("sg_batch", lower=2.0, upper=1.0)))
            out.append(Member(SG_VAL, s, seed, Rule("sg_val", lower=2.0, upper=1.0)))
            out.append(Member(SG_WIDE, s, seed, Rule("sg_val", lower=2.0, upper=SG_WIDE_UPPER)))
            out.append(Member(REWEIGHT, s, seed, Rule("reweight")))
    return out


def choices(members: list[Member], val_mse: np.ndarray, n: int) -> dict[str, dict[tuple[int, str], int]]:
    """Per method, per (seed, setting): the index of the member that is reported (selected on validation)."""
    picked: dict[str, dict[tuple[int, str], int]] = {}
    cvar = {cvar_k(a, n) for a in CVAR_ALPHAS}
    for i, mem in enumerate(members):
        candidates = [mem.method]
        if mem.method == HETROM and mem.rule.m == 0 and mem.rule.k in cvar:
            candidates.append(CVAR)
        for method in candidates:
            best = picked.setdefault(method, {})
            key = (mem.seed, mem.setting)
            if key not in best or val_mse[i] < val_mse[best[key]]:
                best[key] = i
    return picked


def _ci(per_task: np.ndarray) -> tuple[float, float, float]:
    """Mean and 95% normal interval over test tasks of ``per_task`` (already averaged over seeds)."""
    mean = float(per_task.mean())
    half = 1.96 * float(per_task.std(ddof=1)) / np.sqrt(len(per_task))
    return mean, mean - half, mean + half


def _fmt_ci(lo: float, hi: float, signed: bool = False) -> str:
    f = "+.3f" if signed else ".3f"
    return f"[{lo:{f}}, {hi:{f}}]"


def _label(member: Member) -> str:
    return member.tag or "—"


def _verdict(lo: float, hi: float) -> str:
    return "better" if hi < 0 else ("worse" if lo > 0 else "no significant difference")


def sinusoid_tables(members: list[Member], ev: dict[str, np.ndarray], stats: list[dict], seeds: list[int],
                    settings: list[str], n: int) -> dict:
    picked = choices(members, ev["val_1"].mean(1), n)
    tables: dict[str, dict] = {}
    summary_rows, grid_rows = [], []
    methods = [MAML, HETROM, CVAR, SG_BATCH, SG_VAL, SG_WIDE, REWEIGHT]
    for setting in settings:
        maml = np.stack([ev["test_1"][picked[MAML][(s, setting)]] for s in seeds])  # (seeds, tasks)
        rows = []
        reported = [(m, setting) for m in methods] + ([(CLEAN_REF, "clean")] if setting != "clean" and
                                                       "clean" in settings else [])
        for method, source in reported:
            idx = [picked[MAML if method == CLEAN_REF else method][(s, source)] for s in seeds]
            t1, t10 = np.stack([ev["test_1"][i] for i in idx]), np.stack([ev["test_10"][i] for i in idx])
            m1, lo1, hi1 = _ci(t1.mean(0))
            m10, lo10, hi10 = _ci(t10.mean(0))
            d, dlo, dhi = _ci((t1 - maml).mean(0))
            wins = int(((t1 - maml).mean(1) < 0).sum())
            chosen = Counter(_label(members[i]) for i in idx).most_common()
            chosen_text = ", ".join(f"{c} ×{k}" for c, k in chosen) if method in (HETROM, CVAR) else "—"
            if method == CVAR:
                chosen_text = chosen_text.replace("m=0 k=18", "α=0.3").replace("m=0 k=13", "α=0.5")
            kept = {k: [stats[i][f"kept_{k}"] for i in idx if stats[i][f"kept_{k}"] is not None]
                    for k in ("clean", "hard_clean", "noisy", "outlier", "easy")}
            kept_text = " / ".join(f"{100 * np.mean(v):.0f}" if v else "—" for v in kept.values())
            is_maml = method == MAML
            rows.append([method, chosen_text, m1, _fmt_ci(lo1, hi1), m10, _fmt_ci(lo10, hi10),
                         None if is_maml else d, None if is_maml else _fmt_ci(dlo, dhi, signed=True),
                         None if is_maml else f"{wins}/{len(seeds)}", kept_text])
            if method in (HETROM, SG_WIDE, SG_VAL, CVAR, REWEIGHT):
                summary_rows.append((setting, method, d, dlo, dhi))
        tables[setting] = {
            "columns": ["method", "chosen on validation", "MSE 1 step", "95% CI", "MSE 10 steps", "95% CI",
                        "Δ 1 step vs MAML", "95% CI of Δ", "seeds better", "kept % clean / hard clean / noisy / "
                        "outlier / easy"],
            "rows": rows, "floatfmt": ".3f"}
    tables["summary"] = {
        "columns": ["training setting",
                    *[f"{m}: Δ vs MAML [95% CI]" for m in (HETROM, CVAR, REWEIGHT, SG_VAL, SG_WIDE)]],
        "rows": [[f"{s} ({SETTINGS[s][0]})",
                  *[next(f"{d:+.3f} {_fmt_ci(lo, hi, True)} {_verdict(lo, hi)}" for ss, mm, d, lo, hi in summary_rows
                         if ss == s and mm == m) for m in (HETROM, CVAR, REWEIGHT, SG_VAL, SG_WIDE)]]
                 for s in settings],
        "floatfmt": ".3f"}
    for m, d in ((0, 0), *GRID):
        cells = [f"m={m} k={n - d}" + (" (MAML)" if (m, d) == (0, 0) else "")]
        for setting in settings:
            idx = [i for i, mem in enumerate(members) if mem.setting == setting and mem.rule.kind == "rank"
                   and mem.rule.m == m and mem.rule.k == n - d]
            chosen = sum(picked[HETROM][(members[i].seed, setting)] == i for i in idx)
            cells += [float(np.mean([ev["test_1"][i].mean() for i in idx])), f"{chosen}/{len(idx)}"]
        grid_rows.append(cells)
    tables["grid"] = {"columns": ["ranked range", *[c for s in settings for c in (f"{s}: MSE 1 step",
                                                                                     "chosen")]],
                      "rows": grid_rows, "floatfmt": ".3f"}
    return tables


def plot_sinusoid(tables: dict, settings: list[str], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [HETROM, CVAR, SG_BATCH, SG_VAL, SG_WIDE, REWEIGHT]
    fig, ax = plt.subplots(figsize=(11, 4.6))
    width = 0.8 / len(names)
    for j, name in enumerate(names):
        xs, ds, errs = [], [], []
        for i, s in enumerate(settings):
            row = next(r for r in tables[s]["rows"] if r[0] == name)
            lo, hi = (float(v) for v in row[7].strip("[]").split(","))
            xs.append(i + (j - len(names) / 2 + 0.5) * width)
            ds.append(row[6])
            errs.append([[row[6] - lo], [hi - row[6]]])
        ax.bar(xs, ds, width, yerr=np.concatenate(errs, axis=1), label=name, capsize=2)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(range(len(settings)), [f"{s}\n{SETTINGS[s][0]}" for s in settings], fontsize=8)
    ax.set_ylabel("clean-test MSE after 1 step\nminus MAML's (lower is better)")
    ax.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.2))
    fig.tight_layout()
    fig.savefig(out / "sinusoid_vs_maml.png", dpi=90)
    plt.close(fig)


def run_sinusoid(args, log) -> tuple[dict, dict, list[dict]]:
    cfg = SweepConfig(iterations=args.iterations or SweepConfig.iterations)
    if args.smoke:
        cfg = dataclasses.replace(cfg, iterations=4, val_tasks=60, val_batch=10, test_tasks=40)
    members = sinusoid_members(args.seeds, args.settings, cfg.meta_batch)
    log(f"{len(members)} meta-learners in lockstep, {cfg.iterations} meta-iterations")
    families = {s: SETTINGS[s][1] for s in args.settings}
    params, info = sweep.train(members, families, cfg,
                               progress=lambda it, desc: progress(it, desc=desc, quiet=args.quiet), log=log)
    log(f"evaluating {len(members)} meta-learners on {cfg.val_tasks} validation and {cfg.test_tasks} test tasks")
    ev = {k: v.numpy() for k, v in sweep.evaluate(params, cfg).items()}
    tables = sinusoid_tables(members, ev, info["selection"], args.seeds, args.settings, cfg.meta_batch)
    rows = [{**dataclasses.asdict(mem), "val_mse_1": float(ev["val_1"][i].mean()),
             "test_mse_1": float(ev["test_1"][i].mean()), "test_mse_10": float(ev["test_10"][i].mean()),
             **info["selection"][i]} for i, mem in enumerate(members)]
    return tables, dataclasses.asdict(cfg), rows


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", choices=["sinusoid", "fewshot"], default="sinusoid")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=list(SETTINGS))
    parser.add_argument("--iterations", type=int, default=None,
                        help=f"meta-iterations (default: {SweepConfig.iterations} sinusoid, config's for fewshot)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (results are reported with 1)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder of the results JSON and figures")
    parser.add_argument("--smoke", action="store_true", help="a few iterations and tasks (tests)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    seed_everything(0)
    args.out.mkdir(parents=True, exist_ok=True)

    def log(msg: str) -> None:
        if not args.quiet:
            print(msg, flush=True)

    t0 = time.time()
    if args.experiment == "sinusoid":
        tables, config, rows = run_sinusoid(args, log)
        plot_sinusoid(tables, args.settings, args.out)
    else:
        from hetrom.reproduce_fewshot import run_fewshot

        tables, config, rows = run_fewshot(args)
    command = "uv run reproduce.py " + " ".join(sys.argv[1:] if argv is None else argv)
    report = {"tables": tables, "seeds": args.seeds, "versions": package_versions("hetrom"),
              "wall_time_s": round(time.time() - t0, 1), "command": command.strip(),
              "threads": torch.get_num_threads(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
              "config": config, "members": rows}
    RunDir(args.out).write_json(f"{args.experiment}.json", report)
    for name, table in tables.items():
        log(f"\n{name}\n" + " | ".join(map(str, table["columns"])))
        for row in table["rows"]:
            log(" | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row))
    log(f"\nwrote {args.out / (args.experiment + '.json')} in {report['wall_time_s']:.0f} s")
    return report
