"""Verification metrics, positive class = same writer (label 1), via shared.metrics (scikit-learn order).

SSL-HV's evaluation calls ``precision_score(preds, labels)`` -- predictions first -- so its "precision" is
the recall of the sklearn convention and vice versa. :func:`verification_metrics` reports the correct values
and, for comparison with published numbers, the swapped ones as ``precision_sslhv`` / ``recall_sslhv``.
"""

from __future__ import annotations

import numpy as np

from shared.metrics import accuracy, equal_error_rate, precision_recall_f1, roc_auc

DECISIONS = ("Yes", "No", "Unknown", "Both")


def verification_metrics(labels, preds, scores=None) -> dict[str, float]:
    """Accuracy, precision, recall, F1 (+ ROC-AUC and EER when same-writer ``scores`` are given)."""
    labels, preds = np.asarray(labels), np.asarray(preds)
    prf = precision_recall_f1(labels, preds)
    out = {"n": int(len(labels)), "accuracy": accuracy(labels, preds), **prf,
           "precision_sslhv": prf["recall"], "recall_sslhv": prf["precision"]}
    if scores is not None and np.unique(labels).size == 2:
        out["auc"] = roc_auc(labels, scores)
        out["eer"] = equal_error_rate(labels, scores)[0]
    return out


def decision_metrics(labels, decisions, accounting: str = "drop") -> dict[str, float]:
    """Metrics of parsed chain-of-thought decisions (Yes / No / Unknown / Both) against labels (1 = same).

    Args:
        accounting: ``"drop"`` -- the official scripts: rows whose decision is Unknown are not saved, so they
            leave the evaluated set; ``"wrong"`` -- every pair stays and an Unknown counts as a wrong answer.
            In both, "Both" (Yes and No in one answer) is kept and counted wrong, as the scripts save it.

    Returns:
        :func:`verification_metrics` of the kept rows, plus ``n_total``, ``n_unknown``, ``n_both``.
    """
    labels = np.asarray(labels, np.int64)
    decisions = np.asarray(decisions, dtype=object)
    if labels.shape != decisions.shape:
        raise ValueError(f"labels {labels.shape} and decisions {decisions.shape} differ in length")
    bad = sorted({d for d in decisions.tolist() if d not in DECISIONS})
    if bad:
        raise ValueError(f"unknown decisions {bad}; expected {DECISIONS}")
    if accounting not in ("drop", "wrong"):
        raise ValueError(f"accounting must be 'drop' or 'wrong', got {accounting!r}")
    keep = decisions != "Unknown" if accounting == "drop" else np.ones(len(labels), bool)
    y, d = labels[keep], decisions[keep]
    preds = np.where(d == "Yes", 1, np.where(d == "No", 0, 1 - y))  # Unknown / Both: the wrong answer
    out = verification_metrics(y, preds) if len(y) else {"n": 0}
    return {**out, "n_total": int(len(labels)), "n_unknown": int(np.sum(decisions == "Unknown")),
            "n_both": int(np.sum(decisions == "Both"))}


def accuracy_ci(labels, preds, groups, level: float = 0.95, n_boot: int = 2000, seed: int = 0) -> list[float]:
    """A percentile bootstrap confidence interval of accuracy that resamples *writers* (``groups``: the writer of
    each pair's Known sample), not pairs: the pairs of one writer share samples, so a pair-level interval
    (binomial, Wilson) would be too narrow. Vectorised: one multinomial draw of writer counts per replicate.

    Returns:
        ``[low, high]``.
    """
    labels, preds, groups = np.asarray(labels), np.asarray(preds), np.asarray(groups)
    if not (len(labels) == len(preds) == len(groups)) or len(labels) == 0:
        raise ValueError("labels, preds and groups must be non-empty and of one length")
    _, group = np.unique(groups, return_inverse=True)
    n_groups = group.max() + 1
    correct = np.bincount(group, weights=(labels == preds).astype(float), minlength=n_groups)
    total = np.bincount(group, minlength=n_groups).astype(float)
    counts = np.random.default_rng(seed).multinomial(n_groups, np.full(n_groups, 1 / n_groups), size=n_boot)
    acc = (counts @ correct) / (counts @ total)
    alpha = (1 - level) / 2
    return [float(np.quantile(acc, alpha)), float(np.quantile(acc, 1 - alpha))]
