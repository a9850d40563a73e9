"""Image grids of predictions (matplotlib, saved as PNG)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def save_grid(columns: dict[str, list[np.ndarray | None]], path: str | Path, *, cell: float = 1.6) -> Path:
    """One row per sample, one column per entry of ``columns`` (title -> list of images). RGB arrays are shown
    as is, 2-D maps in gray in [0, 1]; ``None`` leaves the cell empty."""
    titles = list(columns)
    n_rows = max(len(v) for v in columns.values())
    fig, axes = plt.subplots(n_rows, len(titles), figsize=(cell * len(titles), cell * n_rows), squeeze=False)
    for c, title in enumerate(titles):
        for r in range(n_rows):
            ax = axes[r, c]
            ax.set_axis_off()
            item = columns[title][r] if r < len(columns[title]) else None
            if item is not None:
                ax.imshow(item, cmap=None if item.ndim == 3 else "gray", vmin=0,
                          vmax=1 if item.dtype != np.uint8 else 255)
            if r == 0:
                ax.set_title(title, fontsize=8)
    fig.tight_layout(pad=0.2)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
