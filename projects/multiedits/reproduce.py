"""Reproduce the paper's claim at CPU scale: ParallelEdits vs sequential single-aspect editing vs one-pass P2P
(and the one-branch InfEdit ablation) on 1, 2 and 3+ edited aspects.

    uv run reproduce.py                    # the committed base model; writes results/claims.json + figures

The claim (paper Fig. 1 / 6 and Table 1): per-aspect accuracy holds as the number of aspects grows, at a fraction
of the cost of sequential editing. Measured here on the offline shapes-world benchmark with the exact judge:
per-aspect accuracy, all aspects right, kept (unedited) attributes, PIE-Bench unedited-region PSNR / SSIM,
structure distance, and the cost per edit (UNet calls, images through the UNet, seconds).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

from conddiff.classifier import AttributeClassifier
from conddiff.pipeline import load_pipeline
from multiedits.benchmark import run_benchmark, save_grid, summarise
from multiedits.data import benchmark_records
from multiedits.editor import EditConfig, P2PConfig, p2p_edit, parallel_edit, sequential_edit, single_branch_edit
from multiedits.paths import DEFAULT_BASE, DEFAULT_JUDGE
from shared.runs import package_versions, seed_everything

HERE = Path(__file__).resolve().parent
BUCKETS = ("1", "2", "3+", "all")


def claim_table(summary: dict, oracle: dict) -> dict:
    rows = []
    for b in BUCKETS:
        for method, by in summary.items():
            s = by[b]
            rows.append([b, method, s["aspect_acc"], s["all_aspects"], s["kept_acc"], s["psnr"], s["ssim"],
                         s["n_background"], s["unet_calls"], s["unet_images"], s["seconds"], s["n"]])
    rows.append(["all", "target render (judge upper bound)", oracle["aspect_acc"], oracle["all_aspects"],
                 oracle["kept_acc"], None, None, None, None, None, None, None])
    return {"columns": ["aspects", "method", "per-aspect acc", "all aspects", "kept attrs", "unedited PSNR (dB)",
                        "unedited SSIM", "n (PSNR)", "UNet calls", "UNet images", "s / edit", "n"],
            "rows": rows, "floatfmt": ".3f"}


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
    p.add_argument("--pipeline", default=str(DEFAULT_BASE))
    p.add_argument("--judge", default=str(DEFAULT_JUDGE))
    p.add_argument("--n-per-count", type=int, default=12, help="records per number of edited aspects (1-4)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=HERE / "results")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    seed_everything(args.seed)
    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads()))))
    pipe = load_pipeline(args.pipeline, "cpu")
    judge = AttributeClassifier.load(args.judge)
    edit, p2p = EditConfig(), P2PConfig()
    methods = {"ParallelEdits": lambda pi, im, pr, a, s: parallel_edit(pi, im, pr, a, edit, s),
               "sequential": lambda pi, im, pr, a, s: sequential_edit(pi, im, pr, a, edit, s),
               "P2P": lambda pi, im, pr, a, s: p2p_edit(pi, im, pr, a, p2p, s),
               "one branch (InfEdit)": lambda pi, im, pr, a, s: single_branch_edit(pi, im, pr, a, edit, s)}
    records = benchmark_records(args.n_per_count, args.seed, (1, 2, 3, 4), pipe.image_size)
    start = time.time()
    rows, extra = run_benchmark(pipe, judge, records, methods, args.seed, quiet=args.quiet)
    summary = summarise(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    save_grid(extra["images"], args.out / "grid.png", list(methods), max_rows=8)
    plot_accuracy(summary, args.out / "accuracy_vs_aspects.png")
    pipeline = Path(args.pipeline).resolve()
    payload = {
        "tables": {"claim": claim_table(summary, extra["oracle"]), "grouping": grouping_table(rows)},
        "seeds": [args.seed], "n_per_count": args.n_per_count, "counts": [1, 2, 3, 4],
        "edit_config": vars(edit), "p2p_config": vars(p2p),
        "pipeline": str(pipeline.relative_to(HERE.parent)) if pipeline.is_relative_to(HERE.parent) else str(pipeline),
        "versions": package_versions("multiedits", "conddiff", "torch", "diffusers", "transformers"),
        "wall_time_s": round(time.time() - start, 1),
        "command": "uv run reproduce.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "summary": summary, "oracle_target_render": extra["oracle"], "rows": rows,
    }
    (args.out / "claims.json").write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {args.out / 'claims.json'} in {payload['wall_time_s']} s")
    for method, by in summary.items():
        s = by["all"]
        print(f"{method}: per-aspect acc {s['aspect_acc']:.3f} (3+: {by['3+']['aspect_acc']:.3f}), "
              f"{s['unet_calls']:.1f} UNet calls, {s['seconds']:.2f} s/edit")
    return args.out / "claims.json"


if __name__ == "__main__":
    main()
