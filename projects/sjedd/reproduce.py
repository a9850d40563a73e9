"""Reproduce the paper's claim at CPU scale on the offline synthetic faces, and write results/offline_claim.json.

Side by side under one budget and the same seeds: the binary-only classifier on the same CLIP image tower; the joint
embedding with the three fidelity losses and fixed weights; the joint embedding with bi-level (Auto-lambda) weights.
Reported: frame and video AUC in-domain (unseen identities), across manipulations (Self-Blended Images, never seen
in training) and across face families (the ``shaded`` generator, never seen in training).

    uv run reproduce.py                 # 3 methods x 3 seeds (see README for the time it took)
    uv run reproduce.py --seeds 0 1     # fewer seeds
    uv run reproduce.py --smoke         # tiny sizes, for a quick check
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from importlib import import_module
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch

from shared.runs import RunDir, package_versions
from sjedd.figures import lambda_plot

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import train  # noqa: E402

METHODS = {"binary": "binary-only classifier (baseline)", "fixed": "joint embedding, fixed weights",
           "sjedd": "joint embedding + bi-level weights (SJEDD)"}
SPLITS = {"test": "in-domain", "cross_manip": "cross-manipulation (SBI)", "cross_family": "cross-family (shaded)"}


def mean_std(values: list[float]) -> str:
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("runs/reproduce"))
    parser.add_argument("--results", type=Path, default=HERE / "results")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--jobs", type=int, default=1, help="runs in parallel processes (one torch thread each)")
    args = parser.parse_args(argv)

    t0 = time.time()
    runs: dict[str, dict[int, dict]] = {m: {} for m in METHODS}
    lambdas: dict[str, list[list[float]]] = {}
    jobs = [(seed, method) for seed in args.seeds for method in METHODS]
    argvs = [["--out", str(args.out), "--seed", str(seed), "--quiet", *(["--smoke"] if args.smoke else []),
              f"method={method}"] for seed, method in jobs]
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn"), initializer=torch.set_num_threads,
                                 initargs=(1,)) as pool:
            paths = list(pool.map(train.main, argvs))
    else:
        paths = [train.main(a) for a in argvs]
    for (seed, method), path in zip(jobs, paths):
        run = RunDir.open(path)
        runs[method][seed] = run.read_json("eval.json")
        if method == "sjedd":
            lambdas[f"seed {seed}"] = [[r[f"lambda{k}"] for k in (1, 2, 3)] for r in run.read_metrics()]
            if seed == args.seeds[0]:
                import_module("eval").main([str(path), "--device", "cpu"])
                args.results.mkdir(parents=True, exist_ok=True)
                shutil.copy(path / "explanations.png", args.results / "explanations.png")

    main_rows, gap_rows, class_rows = [], [], []
    for method, label in METHODS.items():
        row = [label]
        for split in SPLITS:
            row += [mean_std([runs[method][s]["splits"][split][k] for s in args.seeds])
                    for k in ("frame_auc", "video_auc")]
        main_rows.append(row)
        if method != "binary":  # paired by seed against the baseline
            diffs = [[runs[method][s]["splits"][split]["video_auc"] - runs["binary"][s]["splits"][split]["video_auc"]
                      for s in args.seeds] for split in SPLITS]
            gap_rows.append([label] + [f"{np.mean(d):+.3f} ({sum(x > 0 for x in d)}/{len(d)} seeds > 0)" for d in diffs])
        classes = runs[method][args.seeds[0]]["splits"]["test"]["class_auc"]
        class_rows.append([label] + [mean_std([runs[method][s]["splits"]["test"]["class_auc"][c] for s in args.seeds])
                                     for c in sorted(classes)])
    class_names = sorted(runs["binary"][args.seeds[0]]["splits"]["test"]["class_auc"])
    nodes = runs["sjedd"][args.seeds[0]]["splits"]["test"]["node_accuracy_fakes"]
    node_rows = [[METHODS[m]] + [f"{np.mean([runs[m][s]['splits']['test']['node_accuracy_fakes'][n] for s in args.seeds]):.3f}"
                                 for n in nodes] for m in ("fixed", "sjedd")]

    columns = ["method"] + [f"{SPLITS[s]} {k}" for s in SPLITS for k in ("frame AUC", "video AUC")]
    results = {
        "tables": {
            "main": {"columns": columns, "rows": main_rows},
            "paired": {"columns": ["method", *[f"video AUC − baseline, {v}" for v in SPLITS.values()]],
                       "rows": gap_rows},
            "per_class": {"columns": ["method", *[f"{c} vs real" for c in class_names]], "rows": class_rows},
            "nodes": {"columns": ["method", *nodes], "rows": node_rows},
        },
        "runs": {m: {str(s): r for s, r in v.items()} for m, v in runs.items()},
        "lambda_final": {k: v[-1] for k, v in lambdas.items()},
        "seeds": args.seeds,
        "config": "configs/cpu.yaml" + (" + --smoke" if args.smoke else ""),
        "versions": package_versions("sjedd", "transformers"),
        "wall_time_s": round(time.time() - t0, 1),
        "command": "uv run reproduce.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    args.results.mkdir(parents=True, exist_ok=True)
    lambda_plot(lambdas, args.results / "lambda.png")
    name = "offline_claim_smoke.json" if args.smoke else "offline_claim.json"
    RunDir(args.results).write_json(name, results)
    print(f"wrote {args.results / name} in {results['wall_time_s']:.0f}s")
    for row in main_rows:
        print("  ", " | ".join(row))
    return results


if __name__ == "__main__":
    main()
