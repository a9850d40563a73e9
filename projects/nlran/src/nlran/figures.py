"""Figures: axial slices of CT volumes with the true lesion outline and each heat map overlaid."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from shared.data.ct_phantom import CLASSES  # noqa: E402


def plot_heatmaps(volumes: np.ndarray, masks: np.ndarray, labels: np.ndarray, heatmaps: dict[str, np.ndarray],
                  path: str | Path, max_rows: int = 4, lungs: np.ndarray | None = None) -> Path:
    """One row per volume (the axial slice with the most lesion voxels), one column per heat map, and a
    colour bar of the (per-volume min-max normalised) heat scale.

    Args:
        volumes: (N, D, H, W) windowed CT in [0, 1]; masks: (N, D, H, W) lesion masks; labels: (N,).
        heatmaps: column title -> (N, D, H, W) heat maps (each min-max normalised for display).
        lungs: optional (N, D, H, W) lung masks, outlined in cyan (the region the heat maps are scored in).
    """
    rows = min(max_rows, len(volumes))
    cols = 1 + len(heatmaps)
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.2 * rows), squeeze=False)
    for i in range(rows):
        z = int(np.asarray(masks[i]).sum(axis=(1, 2)).argmax())
        axes[i, 0].imshow(volumes[i][z], cmap="gray", vmin=0, vmax=1)
        axes[i, 0].contour(masks[i][z].astype(float), levels=[0.5], colors="lime", linewidths=0.8)
        if lungs is not None:
            axes[i, 0].contour(lungs[i][z].astype(float), levels=[0.5], colors="cyan", linewidths=0.5)
        axes[i, 0].set_ylabel(f"{CLASSES[int(labels[i])]}\nslice {z}", fontsize=8)
        for j, (name, heat) in enumerate(heatmaps.items(), start=1):
            h = heat[i][z]
            h = (h - heat[i].min()) / (heat[i].max() - heat[i].min() + 1e-8)
            axes[i, j].imshow(volumes[i][z], cmap="gray", vmin=0, vmax=1)
            image = axes[i, j].imshow(h, cmap="jet", alpha=0.45, vmin=0, vmax=1)
            axes[i, j].contour(masks[i][z].astype(float), levels=[0.5], colors="white", linewidths=0.6)
            if i == 0:
                axes[i, j].set_title(name, fontsize=8)
        if i == 0:
            axes[i, 0].set_title("CT + lesion" + (" + lungs" if lungs is not None else ""), fontsize=8)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout(rect=(0, 0, 0.93 if heatmaps else 1, 1))
    if heatmaps:
        bar = fig.colorbar(image, cax=fig.add_axes((0.94, 0.15, 0.015, 0.7)))
        bar.set_label("heat (min-max per volume)", fontsize=8)
        bar.ax.tick_params(labelsize=7)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
