"""Figures: per-image predicted semantic labels (the explanation) and the task-weight trajectory."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sjedd.labels import NODE_NAMES  # noqa: E402


def explanation_grid(images: np.ndarray, probs: np.ndarray, classes: list[str], path: Path, n: int = 8) -> Path:
    """Each face beside a bar chart of its ten node marginals (true class in the title)."""
    n = min(n, len(images))
    fig, axes = plt.subplots(2, n, figsize=(1.9 * n, 4.4), gridspec_kw={"height_ratios": [1, 1.4]})
    for j in range(n):
        axes[0, j].imshow(images[j].transpose(1, 2, 0))
        axes[0, j].set_title(classes[j], fontsize=8)
        axes[0, j].axis("off")
        ax = axes[1, j]
        ax.barh(np.arange(10), probs[j], color=["tab:red"] + ["tab:orange"] * 3 + ["tab:blue"] * 6)
        ax.set_xlim(0, 1)
        ax.invert_yaxis()
        ax.set_yticks(np.arange(10), NODE_NAMES if j == 0 else [""] * 10, fontsize=7)
        ax.tick_params(axis="x", labelsize=6)
    fig.suptitle("SJEDD explanations: marginal probability of each label node", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def lambda_plot(trajectories: dict[str, list[list[float]]], path: Path) -> Path:
    """lambda_1..3 (binary, global, local task weights) against training step: each seed thin, the seed mean thick."""
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    arrays = [np.asarray(t) for t in trajectories.values()]
    steps = min(len(a) for a in arrays)
    for k, name in enumerate(("lambda1 (binary)", "lambda2 (global)", "lambda3 (local)")):
        for arr in arrays:
            ax.plot(arr[:steps, k], color=f"C{k}", lw=0.6, alpha=0.35)
        ax.plot(np.mean([a[:steps, k] for a in arrays], axis=0), color=f"C{k}", lw=2, label=name)
    ax.set_xlabel("training step")
    ax.set_ylabel("task weight")
    ax.set_title(f"Auto-lambda task weights ({len(arrays)} seeds; thin: each seed)", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
