"""Classification and verification metrics, on top of scikit-learn where it already does it right.

Every function takes array-likes (numpy arrays, lists or CPU/GPU torch tensors), validates shapes and
raises :class:`ValueError` saying what was expected.
"""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm


def as_numpy(x, name: str) -> np.ndarray:
    """Convert an array-like (including a torch tensor on any device) to numpy; reject empty input."""
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy() if x.is_floating_point() else x.detach().cpu().numpy()
    arr = np.asarray(x)
    if arr.size == 0:
        raise ValueError(f"{name} is empty; expected at least one element")
    return arr


def _labels_scores(y_true, y_score, *, score_ndim: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    y = as_numpy(y_true, "y_true")
    s = as_numpy(y_score, "y_score")
    if y.ndim != 1:
        raise ValueError(f"y_true must be 1-D (n_samples,), got shape {y.shape}")
    if score_ndim is not None and s.ndim != score_ndim:
        raise ValueError(f"y_score must be {score_ndim}-D, got shape {s.shape}")
    if s.shape[0] != y.shape[0]:
        raise ValueError(f"y_true has {y.shape[0]} samples but y_score has {s.shape[0]}")
    return y, s


def accuracy(y_true, y_pred) -> float:
    """Fraction of exact matches between two 1-D label arrays of equal length."""
    y, p = _labels_scores(y_true, y_pred, score_ndim=1)
    return float(np.mean(y == p))


def topk_accuracy(y_true, logits, k: int = 1) -> float:
    """Fraction of samples whose true class is among the k highest scores of ``logits`` (n, n_classes)."""
    y, s = _labels_scores(y_true, logits, score_ndim=2)
    if not 1 <= k <= s.shape[1]:
        raise ValueError(f"k must be in 1..{s.shape[1]} (the number of classes), got {k}")
    topk = np.argpartition(-s, kth=k - 1, axis=1)[:, :k]
    return float(np.mean(np.any(topk == y[:, None], axis=1)))


def roc_auc(y_true, y_score, *, average: str = "macro") -> float:
    """ROC-AUC.

    * binary: ``y_true`` in {0, 1}, ``y_score`` (n,) scores of the positive class;
    * multi-class: ``y_score`` (n, n_classes) probabilities (rows summing to 1), one-vs-rest AUC averaged
      with ``average`` = ``"macro"`` or ``"weighted"``.

    Raises:
        ValueError: only one class present in ``y_true`` (AUC is undefined), or bad shapes.
    """
    y, s = _labels_scores(y_true, y_score)
    if np.unique(y).size < 2:
        raise ValueError("roc_auc is undefined when y_true holds a single class; expected both classes")
    if s.ndim == 1:
        return float(skm.roc_auc_score(y, s))
    if s.ndim != 2:
        raise ValueError(f"y_score must be (n,) or (n, n_classes), got shape {s.shape}")
    if average not in ("macro", "weighted"):
        raise ValueError(f"average must be 'macro' or 'weighted', got {average!r}")
    return float(skm.roc_auc_score(y, s, multi_class="ovr", average=average, labels=np.arange(s.shape[1])))


def precision_recall_f1(y_true, y_pred, *, average: str = "binary", pos_label: int = 1) -> dict[str, float]:
    """Precision, recall and F1 (``average`` = ``"binary"``, ``"macro"`` or ``"weighted"``).

    Follows scikit-learn's argument order ``(y_true, y_pred)``; an undefined ratio (no predicted or no true
    positives) counts as 0.
    """
    y, p = _labels_scores(y_true, y_pred, score_ndim=1)
    if average not in ("binary", "macro", "weighted"):
        raise ValueError(f"average must be 'binary', 'macro' or 'weighted', got {average!r}")
    prec, rec, f1, _ = skm.precision_recall_fscore_support(
        y, p, average=average, pos_label=pos_label, zero_division=0
    )
    return {"precision": float(prec), "recall": float(rec), "f1": float(f1)}


def confusion_matrix(y_true, y_pred, n_classes: int) -> np.ndarray:
    """(n_classes, n_classes) int64 counts; rows are true classes, columns predictions."""
    y, p = _labels_scores(y_true, y_pred, score_ndim=1)
    return skm.confusion_matrix(y, p, labels=np.arange(n_classes)).astype(np.int64)


def equal_error_rate(y_true, y_score) -> tuple[float, float]:
    """Equal error rate of a binary verifier: the point on the ROC curve where FPR = FNR.

    Returns ``(eer, threshold)``; the EER is interpolated linearly between the two ROC points that bracket
    FPR = FNR, and the threshold is the score threshold of the nearer one.
    """
    y, s = _labels_scores(y_true, y_score, score_ndim=1)
    if np.unique(y).size < 2:
        raise ValueError("equal_error_rate needs both classes in y_true")
    fpr, tpr, thr = skm.roc_curve(y, s)
    fnr = 1.0 - tpr
    diff = fpr - fnr  # increases from <= 0 to >= 0 along the curve
    i = int(np.argmax(diff >= 0))
    if i == 0 or diff[i] == 0:
        return float(fpr[i]), float(thr[i])
    # Linear interpolation between points i-1 (fpr < fnr) and i (fpr >= fnr).
    a, b = diff[i - 1], diff[i]
    w = -a / (b - a)
    eer = fpr[i - 1] + w * (fpr[i] - fpr[i - 1])
    return float(eer), float(thr[i] if w >= 0.5 else thr[i - 1])
