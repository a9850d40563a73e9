"""The official per-image metrics (via definet.evaluate.score) against hand-computed cases."""

import numpy as np
import pytest

from definet.evaluate import score


def test_score_hand_computed():
    gt = np.array([[1, 1, 0, 0]] * 2, np.float32)  # 4 positives, 4 negatives
    pred = np.array([[0.9, 0.2, 0.8, 0.1]] * 2)  # min-max -> [1, .125, .875, 0]; >= .5 -> [1, 0, 1, 0]
    r = score([pred], [gt])
    # TP 2, FN 2, FP 2, TN 2: binary F1 = 4 / (4 + 2 + 2) = .5, negative-class F1 = .5, IoU = 2 / 6
    assert r["f1"] == pytest.approx(0.5) and r["f1_macro"] == pytest.approx(0.5)
    assert r["iou"] == pytest.approx(1 / 3)
    # AUC: positives {.9, .2} vs negatives {.8, .1}: pairs won 3 of 4
    assert r["auc"] == pytest.approx(0.75)


def test_macro_f1_exceeds_binary_f1_and_average_over_images():
    gt = np.zeros((10, 10), np.float32)
    gt[:2] = 1  # 20 positives
    pred = np.zeros((10, 10))
    pred[:1] = 1  # 10 true positives, no false positives
    r1 = score([pred], [gt])
    f1_pos = 2 * 10 / (2 * 10 + 0 + 10)
    f1_neg = 2 * 80 / (2 * 80 + 10 + 0)
    assert r1["f1"] == pytest.approx(f1_pos) and r1["f1_macro"] == pytest.approx((f1_pos + f1_neg) / 2)
    assert r1["f1_macro"] > r1["f1"]
    empty = np.zeros((10, 10), np.float32)  # single-class GT: AUC skipped, still counted for F1 / IoU
    r2 = score([pred, pred], [gt, empty])
    assert r2["auc"] == pytest.approx(r1["auc"]) and r2["n_images"] == 2
    assert r2["iou"] == pytest.approx((r1["iou"] + 0.0) / 2)


def test_minmax_normalisation_is_per_image():
    gt = np.array([[1, 0], [0, 0]], np.float32)
    low = np.array([[0.02, 0.01], [0.01, 0.01]])  # all probabilities tiny, but the max is the positive
    assert score([low], [gt])["iou"] == pytest.approx(1.0)
