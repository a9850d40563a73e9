"""Figure of the offline data: one row per manipulation, faces of the three families, with the blend mask.

    uv run benchmarks/plot_faces.py      # writes results/faces_synth_examples.png
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from shared.data import faces_synth as fs  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "results" / "faces_synth_examples.png"


def main() -> None:
    mans = fs.MANIPULATIONS
    fams = ("toon", "shaded", "lfw")
    batch = fs.make_dataset(len(mans) * len(fams), 1, mans, fams, size=64, seed=7)
    fig, axes = plt.subplots(len(mans), 2 * len(fams), figsize=(2 * len(fams) * 1.3, len(mans) * 1.35))
    for i, rec in enumerate(batch.records):
        r, c = mans.index(rec["manipulation"]), 2 * fams.index(rec["family"])
        axes[r, c].imshow(batch.images[i])
        axes[r, c].plot(batch.landmarks[i, :, 0], batch.landmarks[i, :, 1], ".", ms=1, color="cyan")
        axes[r, c + 1].imshow(batch.masks[i], cmap="magma", vmin=0, vmax=1)
        if c == 0:
            axes[r, c].set_ylabel(rec["manipulation"], fontsize=8)
        if r == 0:
            axes[r, c].set_title(f"{rec['family']}", fontsize=8)
            axes[r, c + 1].set_title("mask", fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout(pad=0.3)
    OUT.parent.mkdir(exist_ok=True)
    fig.savefig(OUT, dpi=90)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
