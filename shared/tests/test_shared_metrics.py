"""shared.metrics against hand-computed cases and independent computations."""

import numpy as np
import pytest
import torch

from shared import metrics as M


# ---- classification ---------------------------------------------------------------------------------------
def test_accuracy_and_topk_by_hand():
    assert M.accuracy([0, 1, 2, 2], [0, 1, 1, 2]) == 0.75
    logits = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5]])
    # true classes 2, 1, 2: top-1 hits only the last row; top-2 adds row 0 (0.2 is 2nd) and row 1 (0.3 is 2nd)
    assert M.topk_accuracy([2, 1, 2], logits, k=1) == pytest.approx(1 / 3)
    assert M.topk_accuracy([2, 1, 2], logits, k=2) == 1.0
    assert M.topk_accuracy(torch.tensor([2, 1, 2]), torch.tensor(logits), k=3) == 1.0


def test_binary_auc_counts_concordant_pairs():
    # positives {0.35, 0.8}, negatives {0.1, 0.4}: pairs (0.35>0.1 yes, 0.35>0.4 no, 0.8>both yes) -> 3/4
    assert M.roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.75
    # a tie counts one half
    assert M.roc_auc([0, 1], [0.5, 0.5]) == 0.5


def test_multiclass_auc_macro_and_weighted_by_hand():
    y = np.array([0, 0, 1, 2])
    p = np.array([[0.8, 0.1, 0.1], [0.3, 0.6, 0.1], [0.4, 0.5, 0.1], [0.3, 0.3, 0.4]])
    # class 0 vs rest: pos {0.8,0.3} neg {0.4,0.3}: pairs 0.8>0.4,0.8>0.3, 0.3<0.4, 0.3=0.3 -> (1+1+0+0.5)/4
    auc0 = 2.5 / 4
    # class 1: pos {0.5} neg {0.1,0.6,0.3}: 1 + 0 + 1 -> 2/3
    auc1 = 2 / 3
    # class 2: pos {0.4} neg {0.1,0.1,0.1}: 1
    auc2 = 1.0
    assert M.roc_auc(y, p, average="macro") == pytest.approx((auc0 + auc1 + auc2) / 3)
    assert M.roc_auc(y, p, average="weighted") == pytest.approx(0.5 * auc0 + 0.25 * auc1 + 0.25 * auc2)


def test_precision_recall_f1_binary_and_macro():
    y, p = [1, 1, 1, 0, 0], [1, 0, 1, 1, 0]
    # TP=2 FP=1 FN=1 -> P=2/3 R=2/3 F1=2/3 ; negative class: TP=1 FP=1 FN=1 -> 1/2
    out = M.precision_recall_f1(y, p)
    assert out == pytest.approx({"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3})
    assert M.precision_recall_f1(y, p, average="macro")["f1"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert M.precision_recall_f1([0, 0], [0, 0])["f1"] == 0.0  # no positives anywhere: 0, not NaN


def test_confusion_matrix():
    cm = M.confusion_matrix([0, 1, 2, 2], [0, 2, 2, 1], n_classes=3)
    assert cm.tolist() == [[1, 0, 0], [0, 0, 1], [0, 1, 1]]


def test_equal_error_rate_by_hand():
    # perfectly separable -> 0
    assert M.equal_error_rate([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9])[0] == 0.0
    # one swapped pair among 2+2: at threshold 0.4, FPR = 1/2 and FNR = 1/2 -> EER 0.5
    eer, thr = M.equal_error_rate([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    assert eer == pytest.approx(0.5)
    # 4 negatives, 4 positives, one negative above one positive: EER = 1/4
    y = [0, 0, 0, 0, 1, 1, 1, 1]
    s = [0.1, 0.2, 0.3, 0.7, 0.6, 0.8, 0.9, 0.95]
    assert M.equal_error_rate(y, s)[0] == pytest.approx(0.25)


def test_classification_bad_input():
    with pytest.raises(ValueError, match="empty"):
        M.accuracy([], [])
    with pytest.raises(ValueError, match="samples"):
        M.accuracy([0, 1], [0])
    with pytest.raises(ValueError, match="single class"):
        M.roc_auc([1, 1], [0.2, 0.3])
    with pytest.raises(ValueError, match="k must be"):
        M.topk_accuracy([0], [[0.1, 0.9]], k=3)
    with pytest.raises(ValueError, match="average"):
        M.precision_recall_f1([0, 1], [0, 1], average="micro")


# ---- pixel localization -----------------------------------------------------------------------------------
def test_pixel_scores_by_hand():
    gt = np.array([[1, 1, 0, 0], [0, 0, 0, 0]])
    pred = np.array([[0.9, 0.2, 0.8, 0.0], [0.1, 0.1, 0.1, 0.1]])  # min-max: /0.9
    s = M.pixel_scores(pred, gt)
    # threshold 0.5 after normalisation: predicted positive {0.9, 0.8}: TP=1 FP=1 FN=1 TN=5
    assert s["f1"] == pytest.approx(2 * 1 / (2 + 1 + 1))
    assert s["f1_macro"] == pytest.approx((0.5 + 2 * 5 / (10 + 1 + 1)) / 2)
    assert s["iou"] == pytest.approx(1 / 3)
    # AUC: positives {0.9, 0.2}; negatives {0.8, 0, .1, .1, .1, .1}: 0.9 beats 6; 0.2 beats 5 -> 11/12
    assert s["auc"] == pytest.approx(11 / 12)


def test_pixel_metrics_skips_single_class_auc_and_averages():
    gts = np.zeros((2, 4, 4))
    gts[0, :2] = 1
    preds = np.stack([gts[0] * 0.8 + 0.1, np.full((4, 4), 0.3)])
    out = M.pixel_metrics(preds, gts)
    assert out["n_auc"] == 1 and out["auc"] == 1.0
    assert out["iou"] == pytest.approx((1.0 + 0.0) / 2)
    with pytest.raises(ValueError, match="same shape"):
        M.pixel_metrics(preds, gts[:, :2])


# ---- image fidelity ---------------------------------------------------------------------------------------
def test_mse_psnr_with_and_without_mask():
    a = np.zeros((8, 8))
    b = np.zeros((8, 8))
    b[:4] = 0.5
    assert M.mse(a, b) == pytest.approx(0.125)
    mask = np.zeros((8, 8), bool)
    mask[4:] = True
    assert M.mse(a, b, mask) == 0.0
    assert M.psnr(a, b) == pytest.approx(10 * np.log10(1 / 0.125))
    assert M.psnr(a, b, mask) == float("inf")
    with pytest.raises(ValueError, match="no pixel"):
        M.mse(a, b, np.zeros((8, 8)))
    with pytest.raises(ValueError, match="mask must be"):
        M.mse(a, b, np.ones((4, 4)))


def test_ssim_identity_and_independent_formula():
    rng = np.random.default_rng(0)
    x = rng.random((32, 32))
    assert M.ssim(x, x) == pytest.approx(1.0)
    # a global affine change y = 0.5 x: SSIM < 1; the masked SSIM over all pixels equals the plain one
    y = 0.5 * x
    assert M.ssim(x, y) < 0.99
    assert M.ssim(x, y, np.ones((32, 32))) == pytest.approx(M.ssim(x, y))
    chw = torch.tensor(rng.random((3, 16, 16)))  # (C, H, W) is moved to channels last
    assert M.ssim(chw, chw) == pytest.approx(1.0)


# ---- distributions ----------------------------------------------------------------------------------------
def test_frechet_distance_closed_form():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((4000, 2))
    b = a * 2 + np.array([1.0, -1.0])
    # N(0, I) vs N(m, 4I): |m|^2 + tr(I + 4I - 2*2I) = 2 + 2 = 4 (using the sample covariances exactly)
    mu_a, cov_a = M.gaussian_stats(a)
    mu_b, cov_b = M.gaussian_stats(b)
    assert M.frechet_distance(a, b) == pytest.approx(M.frechet_distance_from_stats(mu_a, cov_a, mu_b, cov_b))
    assert M.frechet_distance(a, b) == pytest.approx(4.0, abs=0.15)
    assert M.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    # an extractor is applied to both sets
    assert M.frechet_distance(a, a + 3, extractor=lambda z: z[:, :1]) == pytest.approx(9.0, abs=1e-6)


def test_sliced_wasserstein_shift_and_1d():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((600, 2))
    # a shift s: mean over unit directions u of (u.s)^2 = |s|^2 / 2 -> SW2 = |s|/sqrt(2)
    s = np.array([3.0, 4.0])
    assert M.sliced_wasserstein(x, x + s, n_projections=2000) == pytest.approx(5 / np.sqrt(2), rel=0.03)
    # 1-D: W1 between {0,1} and {0,3} = (0 + 2)/2 = 1 (W2 = sqrt(2))
    assert M.sliced_wasserstein([[0.0], [1.0]], [[0.0], [3.0]], p=1) == pytest.approx(1.0)
    assert M.sliced_wasserstein([[0.0], [1.0]], [[0.0], [3.0]], p=2) == pytest.approx(np.sqrt(2))
    # unequal sizes: {0} vs {0, 0} -> 0; {0, 1} vs {0, 0, 1, 1} -> 0; {0} vs {0, 2}: W1 = 1 (half the mass moves 2)
    assert M.sliced_wasserstein([[0.0]], [[0.0], [0.0]]) == 0.0
    assert M.sliced_wasserstein([[0.0], [1.0]], [[0.0], [0.0], [1.0], [1.0]]) == 0.0
    assert M.sliced_wasserstein([[0.0]], [[0.0], [2.0]], p=1) == pytest.approx(1.0)
    # and in 1-D it equals scipy's exact W1 on random sets of different sizes
    from scipy.stats import wasserstein_distance

    a, b = rng.standard_normal((37, 1)), rng.standard_normal((101, 1)) + 0.5
    assert M.sliced_wasserstein(a, b, p=1) == pytest.approx(wasserstein_distance(a[:, 0], b[:, 0]))


def test_mmd_by_hand_and_sign():
    # x = {0, 1}, y = {0, 1} with h = 1: unbiased MMD^2 = 2 k(0,1) - 2 * mean(k) where mean over 4 cross pairs
    k01 = np.exp(-0.5)
    expected = k01 + k01 - 2 * (2 * 1 + 2 * k01) / 4
    assert M.mmd([[0.0], [1.0]], [[0.0], [1.0]], bandwidth=1.0) == pytest.approx(expected)
    rng = np.random.default_rng(2)
    same = M.mmd(rng.standard_normal((200, 2)), rng.standard_normal((200, 2)))
    far = M.mmd(rng.standard_normal((200, 2)), rng.standard_normal((200, 2)) + 2)
    assert far > 0.1 > abs(same)


def test_distribution_bad_input():
    with pytest.raises(ValueError, match="dimension"):
        M.sliced_wasserstein(np.zeros((3, 2)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="n_samples, n_features"):
        M.frechet_distance(np.zeros(5), np.zeros(5))
    with pytest.raises(ValueError, match="empty"):
        M.mmd(np.zeros((0, 2)), np.zeros((3, 2)))
