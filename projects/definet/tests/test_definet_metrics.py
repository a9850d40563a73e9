"""The official per-image metrics (via definet.evaluate.score / score_edges) against hand-computed cases."""

import numpy as np
import pytest
import torch

from definet.evaluate import mask_edge, score, score_edges
from definet.losses import edge_targets


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


def test_edge_scores_against_the_ground_truth_band():
    """The edge of a binary mask by the ground-truth recipe (p - erode_5x5(p)) is exactly the official edge band;
    a perfect edge map scores AUC 1, the mask itself (a filled region, not a boundary) scores less, and the
    edge head's scores appear only when the model has an edge output."""
    mask = np.zeros((24, 24), np.float32)
    mask[4:16, 6:18] = 1
    band = edge_targets(torch.from_numpy(mask)).numpy()
    assert np.array_equal(mask_edge(mask), band) and band.sum() == 12 * 12 - 8 * 8
    perfect = score_edges([band], [mask], [mask])
    assert perfect["edge_head_auc"] == pytest.approx(1.0) and perfect["edge_mask_auc"] == pytest.approx(1.0)
    assert perfect["edge_head_iou"] == pytest.approx(1.0)
    filled = score_edges([mask], [np.full_like(mask, 0.5)], [mask])  # head outputs the region; flat seg map
    # 80 band pixels all at 1; of the 496 others, the 64 inside the region tie at 1 (half a win each)
    assert filled["edge_head_auc"] == pytest.approx(1 - 0.5 * 64 / 496)
    assert filled["edge_head_iou"] == pytest.approx(80 / 144)
    assert set(score_edges([None], [mask], [mask])) == {"edge_mask_auc", "edge_mask_f1_macro", "edge_mask_iou"}
    empty = np.zeros_like(mask)  # no edge in the ground truth: the image is skipped, not scored as 0
    assert score_edges([band, band], [mask, mask], [mask, empty])["edge_head_auc"] == pytest.approx(1.0)
