"""Evaluate a trained run: test metrics, inference latency, heat maps and their lesion localisation.

    uv run eval.py runs/<run>                       # the 'best' checkpoint of a train.py run
    uv run eval.py runs/<run> --checkpoint last --device cpu
    uv run eval.py runs/<run> --data-root /data/CC-CCII   # a CC-CCII run (metrics and latency only)

Writes ``<run>/eval.json`` (macro / weighted AUC, precision, recall, F1, accuracy, confusion matrix, latency
per volume, multiply-accumulates per volume and, on the phantom, pointing game / voxel AUC / top-k IoU of
every heat map the model has, scored inside the lungs, CAM / Grad-CAM for the true class)
and ``<run>/heatmaps.png`` (axial slices with the true lesion outline and each heat map).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from nlran.config import Config
from nlran.data import build_splits
from nlran.engine import (
    build_model,
    classification_metrics,
    count_parameters,
    flops_per_volume,
    latency_per_volume,
    predict,
)
from nlran.figures import plot_heatmaps
from nlran.heatmaps import heatmaps_for, localisation_scores
from shared.runs import RunDir, select_device


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="run folder written by train.py")
    parser.add_argument("--checkpoint", default="best", help="checkpoint name in <run>/checkpoints (default: best)")
    parser.add_argument("--data-root", default=None, help="CC-CCII root (for runs trained on it)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    parser.add_argument("--heatmap-volumes", type=int, default=48,
                        help="test volumes with lesions scored for localisation (default: 48)")
    parser.add_argument("--quiet", action="store_true")
    return parser


def evaluate(run: RunDir, cfg: Config, checkpoint: str = "best", device_name: str = "auto",
             heatmap_volumes: int = 48) -> dict:
    """Everything ``eval.json`` holds, for ``run``'s checkpoint ``checkpoint``; also draws the figure.

    On the phantom, every heat map is scored inside the lungs (lesion vs healthy lung voxels) on the first
    ``heatmap_volumes`` test volumes with lesions, CAM / Grad-CAM for the true class; the windowed CT itself
    is scored as a reference map (lesions are denser than healthy lung)."""
    device = select_device(device_name)
    model = build_model(cfg).to(device)
    state = run.load_checkpoint(checkpoint, {"model": model}, restore_rng=False)
    test = build_splits(cfg)["test"]
    probs, labels = predict(model, test, device, cfg.batch_size)
    result = {"arch": cfg.arch, "checkpoint": checkpoint, "epoch": state.get("epoch"),
              "parameters": count_parameters(model), "gmac_per_volume": flops_per_volume(model, tuple(cfg.volume_size)),
              "test": classification_metrics(labels, probs), "test_probs": probs.round(6).tolist(),
              "test_labels": labels.tolist(),
              "latency": latency_per_volume(model, tuple(cfg.volume_size), device, runs=cfg.latency_runs),
              "device": str(device)}
    if cfg.dataset == "phantom":
        with_lesion = np.flatnonzero(test.lesion_masks.flatten(1).any(1).numpy())[:heatmap_volumes]
        volumes = test.volumes[with_lesion].to(device)
        masks, lungs = test.lesion_masks[with_lesion].numpy(), test.lung_masks[with_lesion].numpy()
        true = test.labels[with_lesion]
        heats = heatmaps_for(model, volumes, true.to(device))
        reference = {"ct_intensity": volumes[:, 0].cpu().numpy()}
        result["localisation"] = {name: localisation_scores(h, masks, lungs)
                                  for name, h in {**heats, **reference}.items()}
        result["localisation_whole_volume"] = {name: localisation_scores(h, masks) for name, h in heats.items()}
        if heats:
            plot_heatmaps(volumes[:, 0].cpu().numpy(), masks, true.numpy(),
                          {f"{cfg.arch} {name}": h for name, h in heats.items()}, run.path / "heatmaps.png",
                          lungs=lungs)
    return result


def main(argv: list[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    run = RunDir.open(args.run)
    cfg = run.read_config(Config)
    if args.data_root is not None:
        cfg.data_root = args.data_root
    result = evaluate(run, cfg, args.checkpoint, args.device, args.heatmap_volumes)
    path = run.write_json("eval.json", result)
    t = result["test"]
    run.log(f"eval {args.checkpoint}: AUC {t['auc_macro']:.4f}  precision {t['precision_macro']:.4f}  "
            f"F1 {t['f1_macro']:.4f}  accuracy {t['accuracy']:.4f}  latency "
            f"{result['latency']['median_ms']:.1f} ms/volume", quiet=args.quiet)
    for name, scores in result.get("localisation", {}).items():
        run.log(f"  heat map {name}: pointing game {scores['pointing_game']:.3f}  voxel AUC "
                f"{scores['voxel_auc']:.3f}  top-k IoU {scores['topk_iou']:.3f}", quiet=args.quiet)
    print(f"wrote {path}")
    return result


if __name__ == "__main__":
    main()
