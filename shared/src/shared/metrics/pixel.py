"""Pixel-level localization metrics for predicted masks (forgery / inpainting localization).

The per-image protocol follows the official DeFI-Net evaluation (``test.py``): each prediction is min-max
normalised per image, pixel AUC is computed on the normalised map (images whose ground truth holds a single
class are skipped for AUC), the map is thresholded at 0.5, and F1 (macro over the two classes, as the
official code; binary F1 beside it) and IoU = TP / (TP + FP + FN) are computed; scores are averaged over
images.
"""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm

from shared.metrics.classification import as_numpy


def minmax_normalize(pred: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """Per-image min-max normalisation of a (H, W) map to [0, 1] (a constant map becomes all zeros)."""
    pred = np.asarray(pred, dtype=np.float64)
    lo, hi = pred.min(), pred.max()
    return (pred - lo) / (hi - lo + eps)


def _binary_counts(pred_bin: np.ndarray, gt: np.ndarray) -> tuple[int, int, int, int]:
    tp = int(np.sum(pred_bin & gt))
    fp = int(np.sum(pred_bin & ~gt))
    fn = int(np.sum(~pred_bin & gt))
    tn = int(np.sum(~pred_bin & ~gt))
    return tp, fp, fn, tn


def _f1(tp: int, fp: int, fn: int) -> float:
    denom = 2 * tp + fp + fn
    return 2 * tp / denom if denom else 0.0


def pixel_scores(pred, gt, *, threshold: float = 0.5, normalize: bool = True) -> dict[str, float]:
    """Pixel AUC, macro F1, binary F1 and IoU of one predicted map against one ground-truth mask.

    Args:
        pred: (H, W) scores or probabilities.
        gt: (H, W) mask; nonzero (or > 0.5 for floats in [0, 1]) is the positive (manipulated) class.
        threshold: applied after normalisation.
        normalize: per-image min-max normalisation first (official protocol).

    Returns:
        ``{"auc", "f1_macro", "f1", "iou"}``; ``auc`` is NaN when ``gt`` holds a single class.
    """
    p = as_numpy(pred, "pred").astype(np.float64)
    g = as_numpy(gt, "gt")
    if p.ndim != 2 or g.shape != p.shape:
        raise ValueError(f"pred and gt must be (H, W) maps of the same shape, got {p.shape} and {g.shape}")
    g = g > (0.5 if np.issubdtype(g.dtype, np.floating) else 0)
    if normalize:
        p = minmax_normalize(p)
    pred_bin = p >= threshold
    tp, fp, fn, tn = _binary_counts(pred_bin, g)
    f1_pos = _f1(tp, fp, fn)
    f1_neg = _f1(tn, fn, fp)  # the negative class: its TP are our TN, its FP our FN, its FN our FP
    auc = float(skm.roc_auc_score(g.ravel(), p.ravel())) if 0 < g.sum() < g.size else float("nan")
    union = tp + fp + fn
    return {
        "auc": auc,
        "f1_macro": (f1_pos + f1_neg) / 2,
        "f1": f1_pos,
        "iou": tp / union if union else 0.0,
    }


def pixel_metrics(preds, gts, *, threshold: float = 0.5, normalize: bool = True) -> dict[str, float]:
    """Average of :func:`pixel_scores` over a batch of (N, H, W) maps (AUC over images where it is defined).

    Returns ``{"auc", "f1_macro", "f1", "iou", "n_images", "n_auc"}``.
    """
    p = as_numpy(preds, "preds")
    g = as_numpy(gts, "gts")
    if p.ndim != 3 or g.shape != p.shape:
        raise ValueError(f"preds and gts must be (N, H, W) of the same shape, got {p.shape} and {g.shape}")
    rows = [pixel_scores(pi, gi, threshold=threshold, normalize=normalize) for pi, gi in zip(p, g)]
    aucs = [r["auc"] for r in rows if not np.isnan(r["auc"])]
    out = {k: float(np.mean([r[k] for r in rows])) for k in ("f1_macro", "f1", "iou")}
    out["auc"] = float(np.mean(aucs)) if aucs else float("nan")
    out["n_images"] = len(rows)
    out["n_auc"] = len(aucs)
    return out
