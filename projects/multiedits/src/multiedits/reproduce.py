"""Reproduce the paper's claim at CPU scale: ParallelEdits vs sequential single-aspect editing vs one-pass P2P
(and the one-branch InfEdit ablation) on 1, 2 and 3+ edited aspects.

    uv run reproduce.py                    # conddiff's committed multi-object base; results/claims.json + figures

The claim (paper Fig. 1 / 6 and Table 1): per-aspect accuracy holds as the number of aspects grows, at a fraction
of the cost of sequential editing. Measured here on the offline multi-object shapes-world benchmark (aspects on
different objects and the background) with conddiff's scene judge, for several seeds (each seed draws its own
records and noise): per-aspect accuracy by number of aspects and by the number of branches ParallelEdits' grouping
made, all aspects right, kept facts, PIE-Bench unedited-region PSNR / SSIM, structure distance, and the cost per
edit (UNet calls, images through the UNet, seconds).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from conddiff.assets import BASE_MULTI, SCENE_JUDGE
from shared.runs import package_versions, seed_everything

HERE = Path(__file__).resolve().parents[2]
BUCKETS = ("1", "2", "3+", "all")
METRICS = ("aspect_acc", "all_aspects", "kept_acc", "psnr", "ssim", "unet_calls", "unet_images", "seconds")


def _mean_sd(values) -> tuple[float | None, float | None]:
    vals = [v for v in values if v is not None]
    return (float(np.mean(vals)), float(np.std(vals))) if vals else (None, None)


def claim_table(summaries: list[dict], oracle: dict) -> dict:
    """Mean over seeds (± sd across seeds of the per-seed means) per aspect-count bucket and method."""
    rows = []
    for b in BUCKETS:
        for method in summaries[0]:
            per_seed = [s[method][b] for s in summaries if b in s[method]]
            if not per_seed:
                continue
            acc, acc_sd = _mean_sd(p["aspect_acc"] for p in per_seed)
            rows.append([b, method, acc, acc_sd, _mean_sd(p["all_aspects"] for p in per_seed)[0],
                         _mean_sd(p["kept_acc"] for p in per_seed)[0], _mean_sd(p["psnr"] for p in per_seed)[0],
                         _mean_sd(p["unet_calls"] for p in per_seed)[0], _mean_sd(p["seconds"] for p in per_seed)[0],
                         sum(p["n"] for p in per_seed)])
    rows.append(["all", "target render (judge upper bound)", oracle["aspect_acc"], None, oracle["all_aspects"],
                 oracle["kept_acc"], None, None, None, None])
    return {"columns": ["aspects", "method", "per-aspect acc", "± sd (seeds)", "all aspects", "kept facts",
                        "unedited PSNR (dB)", "UNet calls", "s / edit", "n"], "rows": rows, "floatfmt": ".3f"}


def branches_table(all_rows: list[dict]) -> dict:
    """Every method on the records grouped by how many branches ParallelEdits' grouping made (all seeds)."""
    from multiedits.benchmark import summarise_by_branches

    by = summarise_by_branches(all_rows)
    rows = []
    for b in sorted({k for m in by.values() for k in m}, key=int):
        for method, sm in by.items():
            if b in sm:
                rows.append([b, method, sm[b]["aspect_acc"], sm[b]["all_aspects"], sm[b]["kept_acc"],
                             sm[b]["unet_calls"], sm[b]["n"]])
    return {"columns": ["branches (ParallelEdits)", "method", "per-aspect acc", "all aspects", "kept facts",
                        "UNet calls", "n"], "rows": rows, "floatfmt": ".3f"}


def grouping_table(rows: list[dict]) -> dict:
    """How ParallelEdits' grouping classified the aspects (official thresholds) and how many branches it ran."""
    out = []
    for b in BUCKETS:
        mine = [r for r in rows if r["method"] == "ParallelEdits" and (b == "all" or r["bucket"] == b)]
        kinds = [k for r in mine for k in r["aspect_kinds"]]
        out.append([b, len(kinds), *(kinds.count(k) / max(1, len(kinds)) for k in ("rigid", "non_rigid", "global")),
                    sum(len(r["branches"]) for r in mine) / max(1, len(mine))])
    return {"columns": ["aspects", "n aspects", "rigid", "non-rigid", "global", "branches / edit"], "rows": out,
            "floatfmt": ".3f"}


def pooled_summary(all_rows: list[dict]) -> dict:
    from multiedits.benchmark import summarise

    return summarise(all_rows)


def plot_accuracy(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(7.5, 2.8))
    for method, by in summary.items():
        xs = [b for b in BUCKETS[:-1] if b in by]
        axes[0].plot(xs, [by[b]["aspect_acc"] for b in xs], marker="o", label=method)
        axes[1].plot(xs, [by[b]["seconds"] for b in xs], marker="o", label=method)
    axes[0].set(xlabel="edited aspects", ylabel="per-aspect accuracy", ylim=(0, 1.05))
    axes[1].set(xlabel="edited aspects", ylabel="seconds per edit (CPU)")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pipeline", default=str(BASE_MULTI))
    p.add_argument("--judge", default=str(SCENE_JUDGE))
    p.add_argument("--n-per-count", type=int, default=4, help="records per number of edited aspects (1-3) and seed")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=HERE / "results")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    import torch

    from conddiff.classifier import AttributeClassifier
    from conddiff.pipeline import load_pipeline
    from multiedits.benchmark import run_benchmark, save_grid, summarise
    from multiedits.data import scene_records
    from multiedits.editor import EditConfig, P2PConfig, p2p_edit, parallel_edit, sequential_edit, single_branch_edit

    torch.set_num_threads(args.threads)
    pipe = load_pipeline(args.pipeline, "cpu")
    judge = AttributeClassifier.load(args.judge)
    edit, p2p = EditConfig(), P2PConfig()
    methods = {"ParallelEdits": lambda pi, im, pr, a, s: parallel_edit(pi, im, pr, a, edit, s),
               "sequential": lambda pi, im, pr, a, s: sequential_edit(pi, im, pr, a, edit, s),
               "P2P": lambda pi, im, pr, a, s: p2p_edit(pi, im, pr, a, p2p, s),
               "one branch (InfEdit)": lambda pi, im, pr, a, s: single_branch_edit(pi, im, pr, a, edit, s)}
    start = time.time()
    all_rows, summaries, oracles, first_images = [], [], [], None
    for seed in args.seeds:
        seed_everything(seed)
        records = scene_records(args.n_per_count, seed, (1, 2, 3), pipe.image_size)
        rows, extra = run_benchmark(pipe, judge, records, methods, seed, quiet=args.quiet)
        for r in rows:
            r["seed"] = seed
            r["id"] = f"{seed}-{r['id']}"
        all_rows += rows
        summaries.append(summarise(rows))
        oracles.append(extra["oracle"])
        first_images = first_images or extra["images"]
        print(f"seed {seed}: " + ", ".join(f"{m} {by['all']['aspect_acc']:.3f}" for m, by in summaries[-1].items()),
              flush=True)
    oracle = {k: float(np.mean([o[k] for o in oracles])) for k in oracles[0]}
    pooled = pooled_summary(all_rows)
    args.out.mkdir(parents=True, exist_ok=True)
    save_grid(first_images, args.out / "grid.png", list(methods), max_rows=8)
    plot_accuracy(pooled, args.out / "accuracy_vs_aspects.png")
    pipeline = Path(args.pipeline).resolve()
    payload = {
        "tables": {"claim": claim_table(summaries, oracle), "branches": branches_table(all_rows),
                   "grouping": grouping_table(all_rows)},
        "seeds": args.seeds, "n_per_count": args.n_per_count, "counts": [1, 2, 3], "threads": args.threads,
        "edit_config": vars(edit), "p2p_config": vars(p2p),
        "pipeline": str(pipeline.relative_to(HERE.parent)) if pipeline.is_relative_to(HERE.parent) else str(pipeline),
        "versions": package_versions("multiedits", "conddiff", "torch", "diffusers", "transformers"),
        "wall_time_s": round(time.time() - start, 1),
        "command": "uv run reproduce.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "summary_pooled": pooled, "summary_per_seed": summaries, "oracle_target_render": oracle, "rows": all_rows,
    }
    (args.out / "claims.json").write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {args.out / 'claims.json'} in {payload['wall_time_s']} s")
    for method, by in pooled.items():
        s = by["all"]
        print(f"{method}: per-aspect acc {s['aspect_acc']:.3f} (3+: {by['3+']['aspect_acc']:.3f}), "
              f"{s['unet_calls']:.1f} UNet calls, {s['seconds']:.2f} s/edit")
    return args.out / "claims.json"


if __name__ == "__main__":
    main()
