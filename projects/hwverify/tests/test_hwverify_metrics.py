"""Verification metrics (positive = same writer) and the two accountings of "Unknown", by hand."""

import numpy as np
import pytest

from hwverify.metrics import decision_metrics, verification_metrics


def test_metrics_by_hand_and_the_sslhv_swap():
    labels = [1, 1, 1, 0, 0, 0]
    preds = [1, 1, 0, 1, 0, 0]  # TP 2, FN 1, FP 1, TN 2
    m = verification_metrics(labels, preds, scores=[0.9, 0.8, 0.4, 0.6, 0.3, 0.1])
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 3)
    assert m["auc"] == pytest.approx(8 / 9)  # positives {.9,.8,.4} vs negatives {.6,.3,.1}: .4 < .6 only
    labels2, preds2 = [1, 1, 1, 1, 0], [1, 0, 0, 0, 1]  # TP 1, FN 3, FP 1: precision 1/2, recall 1/4
    m2 = verification_metrics(labels2, preds2)
    assert (m2["precision"], m2["recall"]) == (0.5, 0.25)
    assert (m2["precision_sslhv"], m2["recall_sslhv"]) == (0.25, 0.5)  # precision_score(preds, labels)
    assert m2["f1"] == pytest.approx(2 * 0.5 * 0.25 / 0.75)


def test_unknown_dropped_or_counted_wrong_by_hand():
    labels = [1, 1, 0, 0, 1]
    decisions = ["Yes", "Unknown", "No", "Both", "No"]
    drop = decision_metrics(labels, decisions, "drop")  # rows Yes(1) No(0) Both(0) No(1): correct 2 of 4
    assert drop["n"] == 4 and drop["accuracy"] == 0.5 and drop["n_unknown"] == 1 and drop["n_both"] == 1
    wrong = decision_metrics(labels, decisions, "wrong")  # the Unknown row is wrong too: 2 of 5
    assert wrong["n"] == 5 and wrong["accuracy"] == pytest.approx(0.4)
    with pytest.raises(ValueError, match="unknown decisions"):
        decision_metrics([1], ["maybe"])
    with pytest.raises(ValueError, match="accounting"):
        decision_metrics([1], ["Yes"], "ignore")


def test_accuracy_ci_resamples_writers():
    from hwverify.metrics import accuracy_ci

    labels = np.array([1, 0] * 50)
    groups = np.repeat(np.arange(10), 10)
    perfect = accuracy_ci(labels, labels, groups)
    assert perfect == [1.0, 1.0]
    preds = labels.copy()
    preds[groups < 5] = 1 - preds[groups < 5]  # half the writers all wrong, half all right: accuracy 0.5
    low, high = accuracy_ci(labels, preds, groups)
    assert low < 0.5 < high and high - low > 0.3  # writer-level spread, far wider than a binomial interval
    with pytest.raises(ValueError):
        accuracy_ci(labels, preds, groups[:-1])
