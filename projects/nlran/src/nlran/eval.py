"""Evaluate a trained run: test metrics, cost, heat maps and their lesion localisation inside the lungs.

    uv run eval.py runs/<run>                       # the 'best' checkpoint (chosen on validation) of a train.py run
    uv run eval.py runs/<run> --checkpoint last --device cpu
    uv run eval.py runs/<run> --data-root /data/CC-CCII   # a CC-CCII run moved elsewhere (metrics and latency only)

Merges into ``<run>/eval.json["eval"]`` the macro / weighted AUC, precision, recall, F1, accuracy, confusion
matrix, test probabilities, parameters, multiply-accumulates and latency per volume and, on the phantom, the
pointing game / voxel AUC / top-k IoU of every heat map the model has, scored inside the lungs (CAM / Grad-CAM
for the true class; the windowed CT itself as a reference map), and draws ``<run>/heatmaps.png``.
"""

from __future__ import annotations

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
from shared.runs import build_eval_parser, entrypoint, open_run, progress


def build_parser():
    parser = build_eval_parser(__doc__.split("\n\n")[0])
    parser.set_defaults(checkpoint="best")
    parser.add_argument("--data-root", default=None, help="CC-CCII root (for runs trained on it, if it moved)")
    parser.add_argument("--heatmap-volumes", type=int, default=48,
                        help="test volumes with lesions scored for localisation (default: 48)")
    return parser


def evaluate(model, cfg: Config, device, heatmap_volumes: int = 48, figure=None, quiet: bool = True) -> dict:
    """Everything ``eval.json["eval"]`` holds for a loaded ``model``; draws the heat-map figure to ``figure``.

    On the phantom every heat map is scored inside the lungs (lesion vs healthy lung voxels) on the first
    ``heatmap_volumes`` test volumes with lesions, CAM / Grad-CAM for the true class; the windowed CT itself
    is scored as a reference map (lesions are denser than healthy lung)."""
    model = model.to(device)
    test = build_splits(cfg)["test"]
    probs, labels = predict(model, test, device, cfg.batch_size)
    result = {"arch": cfg.arch, "parameters": count_parameters(model),
              "gmac_per_volume": flops_per_volume(model, tuple(cfg.volume_size)),
              "test": classification_metrics(labels, probs), "test_probs": probs.round(6).tolist(),
              "test_labels": labels.tolist(),
              "latency": latency_per_volume(model, tuple(cfg.volume_size), device, runs=cfg.latency_runs),
              "device": str(device)}
    if cfg.dataset == "phantom":
        with_lesion = np.flatnonzero(test.lesion_masks.flatten(1).any(1).numpy())[:heatmap_volumes]
        volumes = test.volumes[with_lesion].to(device)
        masks, lungs = test.lesion_masks[with_lesion].numpy(), test.lung_masks[with_lesion].numpy()
        true = test.labels[with_lesion]
        heats: dict[str, list] = {}
        for start in progress(range(0, len(volumes), 8), desc="heat maps", quiet=quiet):
            for name, h in heatmaps_for(model, volumes[start:start + 8], true[start:start + 8].to(device)).items():
                heats.setdefault(name, []).append(h)
        heats = {name: np.concatenate(h) for name, h in heats.items()}
        reference = {"ct_intensity": volumes[:, 0].cpu().numpy()}
        result["localisation"] = {name: localisation_scores(h, masks, lungs)
                                  for name, h in {**heats, **reference}.items()}
        result["localisation_whole_volume"] = {name: localisation_scores(h, masks) for name, h in heats.items()}
        if heats and figure is not None:
            plot_heatmaps(volumes[:, 0].cpu().numpy(), masks, true.numpy(),
                          {f"{cfg.arch} {name}": h for name, h in heats.items()}, figure, lungs=lungs)
    return result


@entrypoint
def main(argv: list[str] | None = None) -> dict:
    ev = open_run(Config, argv, parser=build_parser())
    cfg = ev.cfg
    if ev.args.data_root is not None:
        cfg.data_root = ev.args.data_root
    model = build_model(cfg)
    state = ev.load({"model": model})
    result = evaluate(model, cfg, ev.device, ev.args.heatmap_volumes, ev.run.path / "heatmaps.png", ev.args.quiet)
    result["epoch"] = state.get("epoch")
    path = ev.save(result)
    t = result["test"]
    ev.log(f"eval {ev.checkpoint.name} (epoch {result['epoch']}): AUC {t['auc_macro']:.4f}  precision "
           f"{t['precision_macro']:.4f}  F1 {t['f1_macro']:.4f}  accuracy {t['accuracy']:.4f}  latency "
           f"{result['latency']['median_ms']:.1f} ms/volume")
    for name, scores in result.get("localisation", {}).items():
        ev.log(f"  heat map {name} (inside the lungs): voxel AUC {scores['voxel_auc']:.3f}  pointing game "
               f"{scores['pointing_game']:.3f} (chance {scores['pointing_chance']:.3f})  top-k IoU "
               f"{scores['topk_iou']:.3f}")
    ev.log(f"wrote {path}")
    return result


if __name__ == "__main__":
    main()
