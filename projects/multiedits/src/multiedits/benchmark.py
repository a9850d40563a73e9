"""The offline multi-aspect benchmark: run editors on shapes-world records and score them exactly.

For every record and method: the per-aspect accuracy and the kept attributes (judge on the edited image against
the known target scene), PIE-Bench's unedited-region PSNR / SSIM / MSE against the source (outside the union of
the aspects' masks), the structure distance (judge features), UNet calls / images and seconds. Rows are grouped
by the number of edited aspects: 1, 2, 3+ (3 and 4), as the paper's Fig. 6.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np

from conddiff.data import to_tensor
from multiedits.data import render_record
from multiedits.grouping import aspects_from_edit_action
from multiedits.metrics import (
    aspect_scores,
    judge_attributes,
    judge_features,
    scene_aspect_scores,
    structure_distance,
    unedited_metrics,
)
from shared.runs import progress


def bucket(n_aspects: int) -> str:
    return str(n_aspects) if n_aspects < 3 else "3+"


def score_edit(judge, image, record: dict) -> dict[str, float]:
    """Aspect scores of one edited image: a scene judge (``slots``) on multi-object records, else the
    single-object judge."""
    if getattr(judge.cfg, "slots", False):
        from conddiff.classifier import read_scenes

        return scene_aspect_scores(read_scenes(judge, image)[0], record)
    return aspect_scores(judge_attributes(judge, image)[0], record)


def run_benchmark(pipe, judge, records: list[dict], methods: dict[str, Callable], seed: int = 0,
                  quiet: bool = True) -> tuple[list[dict], dict]:
    """Edit every record with every method. Returns per-(record, method) rows and a few images for a grid:
    {"source": [...], "target": [...], method: [...], "captions": [...]}."""
    rows, images = [], defaultdict(list)
    extract = judge_features(judge)
    oracle_reads = []
    for r_i, rec in enumerate(progress(records, total=len(records), desc="records", quiet=quiet)):
        src_u8, tgt_u8, mask = render_record(rec)
        src, tgt = to_tensor(src_u8[None]).to(pipe.device), to_tensor(tgt_u8[None]).to(pipe.device)
        aspects = aspects_from_edit_action(rec["edit_action"], rec.get("blended_words"))
        k = len(aspects)
        oracle_reads.append(score_edit(judge, tgt, rec))
        images["source"].append(src.cpu())
        images["target"].append(tgt.cpu())
        images["captions"].append(rec["editing_prompt"])
        for name, fn in methods.items():
            res = fn(pipe, src, rec["source_prompt"], aspects, seed + r_i)
            out = res.image.to(pipe.device)
            row = {"id": rec["id"], "method": name, "n_aspects": k, "bucket": bucket(k),
                   "unet_calls": res.unet_calls, "unet_images": res.unet_images, "seconds": res.seconds,
                   "branches": [[b.kind, b.prompt] for b in res.branches],
                   "aspect_kinds": [b.kind for b in res.branches for _ in b.aspects],
                   "n_branches": len(res.branches),
                   **score_edit(judge, out, rec),
                   **unedited_metrics(out[0], src[0], mask),
                   "structure": structure_distance(out, src, extract)}
            rows.append(row)
            images[name].append(out.cpu())
    oracle = {key: float(np.mean([o[key] for o in oracle_reads])) for key in ("aspect_acc", "all_aspects", "kept_acc")}
    return rows, {"images": dict(images), "oracle": oracle}


def _mean(values) -> float | None:
    vals = [v for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(vals)) if vals else None


def summarise_by_branches(rows: list[dict], reference: str = "ParallelEdits") -> dict[str, dict[str, dict]]:
    """{method: {number of branches ParallelEdits ran on the record: means}}: every method on the same records,
    grouped by how many branches the ``reference`` method's grouping made for them."""
    branches = {r["id"]: r["n_branches"] for r in rows if r["method"] == reference}
    relabelled = [{**r, "bucket": str(branches.get(r["id"], 0))} for r in rows]
    out: dict[str, dict[str, dict]] = defaultdict(dict)
    keys = ("aspect_acc", "all_aspects", "kept_acc", "psnr", "unet_calls", "seconds")
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in relabelled if r["method"] == method]
        for b in sorted({r["bucket"] for r in mine}):
            sel = [r for r in mine if r["bucket"] == b]
            out[method][b] = {k: _mean(r[k] for r in sel) for k in keys}
            out[method][b]["n"] = len(sel)
    return dict(out)


def summarise(rows: list[dict]) -> dict[str, dict[str, dict]]:
    """{method: {bucket or "all": means of every score}} (PSNR / SSIM / MSE over records that have an unedited
    part; the count of those is ``n_background``)."""
    keys = ("aspect_acc", "all_aspects", "kept_acc", "psnr", "ssim", "mse", "structure", "unet_calls",
            "unet_images", "seconds")
    out: dict[str, dict[str, dict]] = defaultdict(dict)
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        for b in ["1", "2", "3+", "all"]:
            sel = mine if b == "all" else [r for r in mine if r["bucket"] == b]
            if not sel:
                continue
            out[method][b] = {k: _mean(r[k] for r in sel) for k in keys}
            out[method][b]["n"] = len(sel)
            out[method][b]["n_background"] = sum(r["psnr"] is not None for r in sel)
    return dict(out)


def save_grid(images: dict, path: str | Path, methods: list[str], max_rows: int = 8) -> None:
    """Rows = up to ``max_rows`` records spread evenly over the list: source, each method's edit, target render;
    the target caption (changed words in [ ]) under each row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from conddiff.data import to_uint8

    cols = ["source", *methods, "target"]
    total = len(images["source"])
    picks = sorted(set(np.linspace(0, total - 1, min(max_rows, total)).round().astype(int).tolist()))
    fig, axes = plt.subplots(len(picks), len(cols), figsize=(1.25 * len(cols) + 0.2, 1.55 * len(picks)),
                             squeeze=False)
    for i, k in enumerate(picks):  # evenly spread over the records (and so over the aspect counts)
        for c, name in enumerate(cols):
            ax = axes[i][c]
            ax.imshow(to_uint8(images[name][k])[0], interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            if i == 0:
                ax.set_title(name, fontsize=7)
        axes[i][0].set_xlabel(images["captions"][k], fontsize=5.5, loc="left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
