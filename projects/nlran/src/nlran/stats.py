"""Uncertainty of the comparison: bootstrap confidence intervals of the mean macro AUC over seeds.

Each model is trained once per seed and tested on that seed's test set (the phantom data depend on the
seed, and every model of a seed sees the same data). A bootstrap replicate resamples the seeds with
replacement and, inside every drawn seed, the test volumes with replacement (a two-level bootstrap, so the
interval holds the training noise across seeds and the test-set noise), and computes each model's mean
macro AUC over the drawn seeds. The replicates are *paired*: every model gets the same seeds and volumes, so
the interval of a difference between two models is the interval of their per-replicate differences.
(A seed drawn twice in one replicate reuses that replicate's volume resample, with weight 2.)
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def macro_auc_batch(labels: np.ndarray, probs: np.ndarray, n_classes: int | None = None) -> np.ndarray:
    """One-vs-rest macro ROC-AUC of many resamples at once (Mann-Whitney U with mid-ranks for ties).

    Args:
        labels: (R, n) integer labels of R resamples; probs: (R, n, C) class probabilities.

    Returns:
        (R,) macro AUC (mean over classes of ``(rank-sum of positives - P (P + 1) / 2) / (P N)``); a resample
        that lacks a class gets NaN.
    """
    labels, probs = np.asarray(labels), np.asarray(probs, dtype=np.float64)
    if labels.ndim != 2 or probs.shape[:2] != labels.shape or probs.ndim != 3:
        raise ValueError(f"need labels (R, n) and probs (R, n, C), got {labels.shape} and {probs.shape}")
    n_classes = n_classes or probs.shape[2]
    aucs = []
    for c in range(n_classes):
        pos = labels == c
        n_pos, n_neg = pos.sum(1), (~pos).sum(1)
        ranks = rankdata(probs[:, :, c], axis=1)
        u = (ranks * pos).sum(1) - n_pos * (n_pos + 1) / 2
        with np.errstate(invalid="ignore", divide="ignore"):
            aucs.append(np.where((n_pos > 0) & (n_neg > 0), u / (n_pos * n_neg), np.nan))
    return np.mean(aucs, axis=0)


def bootstrap_macro_auc(labels: list[np.ndarray], probs: dict[str, list[np.ndarray]], n_boot: int = 1000,
                        seed: int = 0, reference: str | None = None, level: float = 0.95) -> dict[str, dict]:
    """Mean macro AUC over seeds with a two-level paired bootstrap interval (module docstring).

    Args:
        labels: per seed, the test labels (n_s,).
        probs: model name -> per seed, the test probabilities (n_s, C), in the order of ``labels``.
        reference: a model name; each other model also gets the interval of ``its AUC - reference's AUC`` and
            the share of replicates in which it beats the reference.

    Returns:
        name -> ``{"mean", "ci_low", "ci_high"}`` (+ ``"diff_mean", "diff_ci_low", "diff_ci_high", "p_better"``).
    """
    n_seeds = len(labels)
    if n_seeds == 0 or any(len(p) != n_seeds for p in probs.values()):
        raise ValueError("every model needs one probability array per seed")
    rng = np.random.default_rng(seed)
    draws = np.zeros((n_boot, len(probs)))
    names = list(probs)
    seed_picks = rng.integers(0, n_seeds, size=(n_boot, n_seeds))
    for s in range(n_seeds):
        n = len(labels[s])
        idx = rng.integers(0, n, size=(n_boot, n))  # the volumes drawn whenever seed s is drawn
        weight = (seed_picks == s).sum(1)  # how often seed s was drawn in each replicate
        y = labels[s][idx]
        for m, name in enumerate(names):
            auc = macro_auc_batch(y, probs[name][s][idx])
            draws[:, m] += weight * auc
    draws /= n_seeds
    alpha = (1 - level) / 2
    out = {}
    for m, name in enumerate(names):
        point = float(np.mean([macro_auc_batch(labels[s][None], probs[name][s][None])[0] for s in range(n_seeds)]))
        lo, hi = np.nanquantile(draws[:, m], [alpha, 1 - alpha])
        out[name] = {"mean": point, "ci_low": float(lo), "ci_high": float(hi)}
        if reference is not None and name != reference:
            diff = draws[:, m] - draws[:, names.index(reference)]
            ref_point = float(np.mean([macro_auc_batch(labels[s][None], probs[reference][s][None])[0]
                                       for s in range(n_seeds)]))
            dlo, dhi = np.nanquantile(diff, [alpha, 1 - alpha])
            out[name].update({"diff_mean": point - ref_point, "diff_ci_low": float(dlo), "diff_ci_high": float(dhi),
                              "p_better": float(np.mean(diff > 0))})
    return out
