"""Reproduce the paper's claim at CPU scale on the offline synthetic faces, and write results/offline_claim.json.

Side by side under one budget and the same seeds: the binary-only classifier on the same CLIP image tower; the joint
embedding with the three fidelity losses and fixed weights; the joint embedding with bi-level (Auto-lambda) weights.
Reported: frame and video AUC in-domain (unseen identities), across manipulations (Self-Blended Images, never seen
in training) and across face families (the ``shaded`` generator, never seen in training).

    uv run reproduce.py                 # 3 methods x 5 seeds, one after the other (see README for the time it took)
    uv run reproduce.py --seeds 0 1     # fewer seeds
    uv run reproduce.py --smoke         # tiny sizes, for a quick check
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

from shared.runs import RunDir, package_versions
from sjedd import eval as evaluate
from sjedd import train
from sjedd.figures import lambda_plot

PROJECT = Path(__file__).resolve().parents[2]

METHODS = {"binary": "binary-only classifier (baseline)", "fixed": "joint embedding, fixed weights",
           "sjedd": "joint embedding + bi-level weights (SJEDD)"}
SPLITS = {"test": "in-domain", "cross_manip": "cross-manipulation (SBI)", "cross_family": "cross-family (shaded)"}


def mean_std(values: list[float]) -> str:
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}"


def paired(values: list[float]) -> str:
    """Mean of per-seed differences, their std, and on how many seeds the difference is positive."""
    return f"{np.mean(values):+.3f} ± {np.std(values):.3f} ({sum(x > 0 for x in values)}/{len(values)} > 0)"


def auc(runs: dict, method: str, seed: int, split: str, key: str) -> float:
    return runs[method][seed]["splits"][split][key]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--out", type=Path, default=Path("runs/reproduce"))
    parser.add_argument("--results", type=Path, default=PROJECT / "results")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the committed results use 1)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)  # train.main sets it again for each run (shared.runs.start)

    t0 = time.time()
    runs: dict[str, dict[int, dict]] = {m: {} for m in METHODS}
    lambdas: dict[str, list[list[float]]] = {}
    wall: dict[str, list[float]] = {m: [] for m in METHODS}
    for seed in args.seeds:  # seed-major, so the cached offline splits of a seed serve all three methods
        for method in METHODS:
            t = time.time()
            path = train.main(["--out", str(args.out), "--seed", str(seed), "--quiet", "--threads", str(args.threads),
                               *(["--smoke"] if args.smoke else []), f"method={method}"])["run"]
            wall[method].append(round(time.time() - t, 1))
            run = RunDir.open(path)
            runs[method][seed] = run.read_json("eval.json")["train"]
            if method == "sjedd":
                lambdas[f"seed {seed}"] = [[r[f"lambda{k}"] for k in (1, 2, 3)] for r in run.read_metrics()]
                if seed == args.seeds[0]:
                    evaluate.main([str(path), "--device", "cpu", "--quiet", "--threads", str(args.threads)])
                    args.results.mkdir(parents=True, exist_ok=True)
                    shutil.copy(path / "explanations.png", args.results / "explanations.png")
            print(f"seed {seed} {method}: " + ", ".join(
                f"{SPLITS[s]} {auc(runs, method, seed, s, 'frame_auc'):.3f}/"
                f"{auc(runs, method, seed, s, 'video_auc'):.3f}"
                for s in SPLITS) + f"  ({wall[method][-1]:.0f}s)", flush=True)

    seeds = args.seeds
    main_rows, gap_rows, class_rows = [], [], []
    for method, label in METHODS.items():
        main_rows.append([label] + [mean_std([auc(runs, method, s, split, k) for s in seeds])
                                    for split in SPLITS for k in ("frame_auc", "video_auc")])
    comparisons = {("fixed", "binary"): "fixed-weight multitask − binary baseline",
                   ("sjedd", "binary"): "SJEDD − binary baseline",
                   ("sjedd", "fixed"): "SJEDD − fixed weights (the effect of Auto-λ)"}
    for (a, b), label in comparisons.items():
        gap_rows.append([label] + [paired([auc(runs, a, s, split, k) - auc(runs, b, s, split, k) for s in seeds])
                                   for split in SPLITS for k in ("frame_auc", "video_auc")])
    class_names = sorted(runs["binary"][seeds[0]]["splits"]["test"]["class_auc"])
    for method, label in METHODS.items():
        class_rows.append([label] + [mean_std([runs[method][s]["splits"]["test"]["class_auc"][c] for s in seeds])
                                     for c in class_names])
    nodes = runs["sjedd"][seeds[0]]["splits"]["test"]["node_accuracy_fakes"]
    node_rows = [[METHODS[m]] + [
        f"{np.mean([runs[m][s]['splits']['test']['node_accuracy_fakes'][n] for s in seeds]):.3f}" for n in nodes]
        for m in ("fixed", "sjedd")]
    final = np.array([lambdas[f"seed {s}"][-1] for s in seeds])
    lambda_rows = [[f"λ{k + 1} ({task})", f"{lambdas[f'seed {seeds[0]}'][0][k]:.3f}", mean_std(list(final[:, k])),
                    f"{final[:, k].min():.3f} … {final[:, k].max():.3f}"]
                   for k, task in enumerate(("binary", "global", "local"))]

    columns = ["method"] + [f"{SPLITS[s]} {k}" for s in SPLITS for k in ("frame AUC", "video AUC")]
    results = {
        "tables": {
            "main": {"columns": columns, "rows": main_rows},
            "paired": {"columns": ["paired by seed"] + columns[1:], "rows": gap_rows},
            "lambda": {"columns": ["task weight", "after the first meta-step", "at the end (mean ± std)",
                                   "range over seeds"], "rows": lambda_rows},
            "per_class": {"columns": ["method", *[f"{c} vs real" for c in class_names]], "rows": class_rows},
            "nodes": {"columns": ["method", *nodes], "rows": node_rows},
        },
        "runs": {m: {str(s): r for s, r in v.items()} for m, v in runs.items()},
        "lambda_trajectory": lambdas,
        "seeds": seeds,
        "threads": torch.get_num_threads(),
        "config": "configs/cpu.yaml" + (" + --smoke" if args.smoke else ""),
        "versions": package_versions("sjedd", "transformers"),
        "run_wall_time_s": wall,
        "wall_time_s": round(time.time() - t0, 1),
        "command": "uv run reproduce.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    args.results.mkdir(parents=True, exist_ok=True)
    lambda_plot(lambdas, args.results / ("lambda_smoke.png" if args.smoke else "lambda.png"))
    name = "offline_claim_smoke.json" if args.smoke else "offline_claim.json"
    RunDir(args.results).write_json(name, results)
    print(f"wrote {args.results / name} in {results['wall_time_s']:.0f}s")
    for row in main_rows + gap_rows:
        print("  ", " | ".join(row))
    return results


if __name__ == "__main__":
    main()
