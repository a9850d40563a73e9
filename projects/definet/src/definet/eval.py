"""Evaluate a trained run (official per-image protocol) or predict masks for a folder of images.

    uv run eval.py runs/<run>                          # every test split of the run's data -> eval.json + figure
    uv run eval.py runs/<run> --data-root /data/IID    # the run's model on a real dataset's test split
    uv run eval.py runs/<run> --images DIR [--masks DIR]   # predictions (PNG) and a figure for any images;
                                                           # metrics too when masks (same file stems) are given

Metrics (official ``test.py``): prediction upsampled to the mask size, sigmoid, per-image min-max
normalisation, pixel AUC, F1 (macro over both classes, as the official code; binary F1 beside it) and IoU at
threshold 0.5, averaged over images; edge maps scored against the ground-truth edge band. Merged into
``<run>/eval.json`` under the section ``eval`` (``eval-<folder name>`` for ``--images`` / ``--data-root``),
with the checkpoint evaluated (default ``best``); figures and predicted masks go inside the run folder only.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import cv2
import numpy as np

from definet.config import TrainConfig
from definet.data import IMAGE_EXTS, folder_splits, offline_splits
from definet.evaluate import predict, score, score_edges
from definet.model import build_model
from shared.runs import UsageError, build_eval_parser, entrypoint, open_run, progress


def make_parser():
    parser = build_eval_parser(__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.set_defaults(checkpoint="best")
    parser.add_argument("--data-root", default=None, help="evaluate on this real dataset's test split instead")
    parser.add_argument("--images", type=Path, default=None, help="a folder of images to localise")
    parser.add_argument("--masks", type=Path, default=None, help="ground-truth masks for --images (same stems)")
    parser.add_argument("--figures", type=int, default=6, help="samples shown per figure (default: 6)")
    for action in parser._actions:
        if action.dest == "checkpoint":
            action.help = "checkpoint set to evaluate (default: best, the best-validation-AUC epoch, as official)"
    return parser


def read_folder(images_dir: Path, masks_dir: Path | None
                ) -> tuple[list[np.ndarray], list[np.ndarray] | None, list[str]]:
    """Images (uint8 RGB) of a folder and, optionally, their masks (paired by file stem)."""
    if not images_dir.is_dir():
        raise FileNotFoundError(f"--images '{images_dir}' is not a folder of images ({', '.join(IMAGE_EXTS)})")
    paths = sorted(p for p in images_dir.iterdir() if p.suffix.lower() in IMAGE_EXTS)
    if not paths:
        raise FileNotFoundError(f"--images '{images_dir}' holds no image files ({', '.join(IMAGE_EXTS)})")
    images, masks = [], [] if masks_dir is not None else None
    for p in paths:
        image = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"'{p}' is not a readable image")
        images.append(image[..., ::-1].copy())
        if masks_dir is not None:
            candidates = [q for q in masks_dir.glob(p.stem + ".*") if q.suffix.lower() in IMAGE_EXTS]
            if not candidates:
                raise FileNotFoundError(f"no mask for '{p.name}' in --masks '{masks_dir}' (expected {p.stem}.png)")
            mask = cv2.imread(str(candidates[0]), cv2.IMREAD_GRAYSCALE)
            if mask.shape != image.shape[:2]:
                raise ValueError(f"mask '{candidates[0]}' is {mask.shape} but its image is {image.shape[:2]}")
            masks.append((mask > 127.5).astype(np.float32))
    return images, masks, [p.name for p in paths]


@entrypoint
def main(argv: list[str] | None = None) -> dict:
    ev = open_run(TrainConfig, argv, parser=make_parser())
    from definet.figures import save_grid  # matplotlib and scikit-learn: imported past --help
    from shared.metrics import minmax_normalize

    args, run, cfg = ev.args, ev.run, ev.cfg
    if args.masks is not None and args.images is None:
        raise UsageError("--masks needs --images (the images the masks belong to)")
    model = build_model(dataclasses.replace(cfg.model, pretrained=None)).to(ev.device)
    ev.load({"model": model})
    size = cfg.data.image_size

    if args.images is not None:
        images, masks, names = read_folder(args.images, args.masks)
        splits = {args.images.name: (images, masks, names)}
        out_name = f"eval-{args.images.name}"
    else:
        if args.data_root is not None:
            data = folder_splits(args.data_root, cfg.data, cfg.seed)
            out_name = f"eval-{Path(args.data_root).resolve().name}"
        else:
            data = (folder_splits(cfg.data_root, cfg.data, cfg.seed) if cfg.data.source == "folder"
                    else offline_splits(cfg.data, cfg.seed))
            out_name = "eval"
        splits = {name: (ds.images, ds.masks, ds.names) for name, ds in data.items() if name.startswith("test")}

    report = {"splits": {}}
    for name, (images, masks, names) in progress(list(splits.items()), desc="evaluating", quiet=args.quiet):
        probs, edges = predict(model, images, size, ev.device)
        tag = name.replace("/", "-")
        if args.images is not None:  # write the predicted masks
            pred_dir = run.path / out_name / "predictions"
            pred_dir.mkdir(parents=True, exist_ok=True)
            for prob, fname in zip(probs, names):
                cv2.imwrite(str(pred_dir / (Path(fname).stem + ".png")), (prob * 255).round().astype(np.uint8))
        k = min(args.figures, len(images))
        columns = {"image": list(images[:k])}
        if masks is not None:
            columns["ground truth"] = [np.asarray(m, np.float32) for m in masks[:k]]
        columns["prediction (min-max)"] = [minmax_normalize(p) for p in probs[:k]]
        if edges[0] is not None:
            columns["predicted edge (min-max)"] = [minmax_normalize(e) for e in edges[:k]]
        figure = save_grid(columns, run.path / f"{out_name}-{tag}.png")
        entry = {"figure": figure.name, "n_images": len(images)}
        if masks is not None:
            entry.update(score(probs, masks))
            entry.update(score_edges(edges, probs, masks))
            if not args.quiet:
                print(f"{name:18s} AUC {entry['auc']:.4f}  F1(macro) {entry['f1_macro']:.4f}  "
                      f"F1(binary) {entry['f1']:.4f}  IoU {entry['iou']:.4f}  ({len(images)} images)")
        report["splits"][name] = entry
    path = ev.save(report, section=out_name)
    if not args.quiet:
        print(f"wrote {path} (section {out_name!r}, checkpoint {args.checkpoint!r})")
    return report


if __name__ == "__main__":
    main()
