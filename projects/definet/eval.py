"""Evaluate a trained run (official per-image protocol) or predict masks for a folder of images.

    uv run eval.py runs/<run>                          # every test split of the run's data -> eval.json + figure
    uv run eval.py runs/<run> --data-root /data/IID    # the run's model on a real dataset's test split
    uv run eval.py runs/<run> --images DIR [--masks DIR]   # predictions (PNG) and a figure for any images;
                                                           # metrics too when masks (same file stems) are given

Metrics (official ``test.py``): prediction upsampled to the mask size, sigmoid, per-image min-max
normalisation, pixel AUC, F1 (macro over both classes, as the official code; binary F1 beside it) and IoU at
threshold 0.5, averaged over images. Written to ``<run>/eval.json`` (or ``<run>/eval-<name>.json``).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

import cv2
import numpy as np
import torch

from definet.config import TrainConfig
from definet.data import IMAGE_EXTS, folder_splits, offline_splits
from definet.evaluate import predict, score
from definet.figures import save_grid
from definet.model import build_model
from shared.metrics import minmax_normalize
from shared.runs import RunDir, select_device


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="run folder written by train.py")
    parser.add_argument("--checkpoint", default="best", help="checkpoint name in <run>/checkpoints (default: best)")
    parser.add_argument("--data-root", default=None, help="evaluate on this real dataset's test split instead")
    parser.add_argument("--images", type=Path, default=None, help="a folder of images to localise")
    parser.add_argument("--masks", type=Path, default=None, help="ground-truth masks for --images (same stems)")
    parser.add_argument("--figures", type=int, default=6, help="samples shown per figure (default: 6)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    parser.add_argument("--quiet", action="store_true")
    return parser


def read_folder(images_dir: Path, masks_dir: Path | None) -> tuple[list[np.ndarray], list[np.ndarray] | None, list[str]]:
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


def main(argv: list[str] | None = None) -> dict:
    args = make_parser().parse_args(argv)
    run = RunDir.open(args.run)
    cfg = run.read_config(TrainConfig)
    if int(os.environ.get("OMP_NUM_THREADS", "0") or 0) > 0:
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    device = select_device(args.device)
    model = build_model(dataclasses.replace(cfg.model, pretrained=None)).to(device)
    state = run.load_checkpoint(args.checkpoint, {"model": model}, restore_rng=False)
    size = cfg.data.image_size

    if args.images is not None:
        images, masks, names = read_folder(args.images, args.masks)
        splits = {args.images.name: (images, masks, names)}
        out_name = f"eval-{args.images.name}"
    else:
        if args.data_root is not None:
            cfg = dataclasses.replace(cfg, data_root=args.data_root)
        data = (folder_splits(cfg.data_root, cfg.data, cfg.seed) if cfg.data_root is not None or cfg.data.source == "folder"
                else offline_splits(cfg.data, cfg.seed))
        splits = {name: (ds.images, ds.masks, ds.names) for name, ds in data.items() if name.startswith("test")}
        out_name = "eval"

    report = {"checkpoint": args.checkpoint, "epoch": state.get("epoch"), "splits": {}}
    for name, (images, masks, names) in splits.items():
        probs, edges = predict(model, images, size, device)
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
            if not args.quiet:
                print(f"{name:18s} AUC {entry['auc']:.4f}  F1(macro) {entry['f1_macro']:.4f}  "
                      f"F1(binary) {entry['f1']:.4f}  IoU {entry['iou']:.4f}  ({len(images)} images)")
        report["splits"][name] = entry
    path = run.write_json(f"{out_name}.json", report)
    if not args.quiet:
        print(f"wrote {path}")
    return report


if __name__ == "__main__":
    main()
