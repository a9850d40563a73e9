"""Every loss against an independent float64 NumPy computation from its definition, plus the paper's properties."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rld import losses


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


def kl(p: np.ndarray, q: np.ndarray) -> float:
    keep = p > 0
    return float(np.sum(p[keep] * np.log(p[keep] / q[keep])))


def scd_reference(zs, zt, y, tau_a):
    out = []
    for s, t, c in zip(zs, zt, y):
        ps, pt = softmax(s / tau_a), softmax(t / tau_a)
        out.append(kl(np.array([pt.max(), 1 - pt.max()]), np.array([ps[c], 1 - ps[c]])))
    return np.mean(out) * tau_a**2


def mcd_reference(zs, zt, y, tau, strict=False):
    out = []
    for s, t, c in zip(zs, zt, y):
        keep = t < t[c] if not strict else t <= t[c]
        out.append(kl(softmax(t[keep] / tau), softmax(s[keep] / tau)) if keep.any() else 0.0)
    return np.mean(out) * tau**2


def kd_reference(zs, zt, tau):
    return np.mean([kl(softmax(t / tau), softmax(s / tau)) for s, t in zip(zs, zt)]) * tau**2


def ce_reference(zs, y):
    return np.mean([-np.log(softmax(s)[c]) for s, c in zip(zs, y)])


def dkd_reference(zs, zt, y, tau):
    tckd, nckd = [], []
    for s, t, c in zip(zs, zt, y):
        ps, pt = softmax(s / tau), softmax(t / tau)
        tckd.append(kl(np.array([pt[c], 1 - pt[c]]), np.array([ps[c], 1 - ps[c]])))
        keep = np.arange(len(s)) != c
        nckd.append(kl(softmax(t[keep] / tau), softmax(s[keep] / tau)))
    return np.mean(tckd) * tau**2, np.mean(nckd) * tau**2


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    zs = torch.randn(16, 10, generator=g, dtype=torch.float64) * 3
    zt = torch.randn(16, 10, generator=g, dtype=torch.float64) * 3
    y = torch.randint(0, 10, (16,), generator=g)
    return zs, zt, y


def test_scd_matches_definition(batch):
    zs, zt, y = batch
    for tau_a in (1.0, 4.0):
        got = losses.scd_loss(zs, zt, y, tau_a).item()
        assert got == pytest.approx(scd_reference(zs.numpy(), zt.numpy(), y.numpy(), tau_a), rel=1e-9)


@pytest.mark.parametrize("strict", [False, True])
def test_mcd_matches_definition(batch, strict):
    zs, zt, y = batch
    got = losses.mcd_loss(zs, zt, y, 4.0, strict=strict).item()
    assert got == pytest.approx(mcd_reference(zs.numpy(), zt.numpy(), y.numpy(), 4.0, strict), rel=1e-9)


def test_strict_mask_keeps_the_ground_truth_class(batch):
    zs, zt, y = batch
    ge = losses.teacher_ge_mask(zt, y)
    g = losses.teacher_ge_mask(zt, y, strict=True)
    rows = torch.arange(len(y))
    assert ge[rows, y].all() and not g[rows, y].any()
    assert torch.equal(ge & ~losses.one_hot_mask(zt, y), g)


def test_rld_total_matches_definition(batch):
    zs, zt, y = batch
    a = (zs.numpy(), zt.numpy(), y.numpy())
    for epoch, ramp in ((5, 5 / 20), (40, 1.0)):
        expected = ce_reference(a[0], a[2]) + ramp * (1.0 * scd_reference(*a, 1.0) + 8.0 * mcd_reference(*a, 4.0))
        assert losses.rld_loss(zs, zt, y, epoch).item() == pytest.approx(expected, rel=1e-9)


def test_rld_skips_zero_weight_terms_and_keeps_every_path_exact(batch):
    """CE from SCD's log-softmax (tau_a = 1) or from its own (tau_a != 1), dropped terms, all-zero weights."""
    zs, zt, y = batch
    a = (zs.numpy(), zt.numpy(), y.numpy())
    for ce_w, alpha, beta, tau_a in ((1.0, 1.0, 8.0, 4.0), (0.0, 1.0, 8.0, 1.0), (2.0, 0.0, 8.0, 1.0),
                                     (1.0, 3.0, 0.0, 1.0), (0.5, 1.0, 8.0, 2.0)):
        expected = ce_w * ce_reference(a[0], a[2]) + alpha * scd_reference(*a, tau_a) + beta * mcd_reference(*a, 4.0)
        got = losses.rld_loss(zs, zt, y, 40, ce_weight=ce_w, alpha=alpha, beta=beta, alpha_temperature=tau_a)
        assert got.item() == pytest.approx(expected, rel=1e-9)
    leaf = zs.clone().requires_grad_(True)
    zero = losses.rld_loss(leaf, zt, y, 40, ce_weight=0.0, alpha=0.0, beta=0.0)
    zero.backward()
    assert zero.item() == 0.0 and torch.all(leaf.grad == 0)


def test_warmup_scales_only_the_distillation_term(batch):
    zs, zt, y = batch
    ce = F.cross_entropy(zs, y).item()
    assert losses.rld_loss(zs, zt, y, 0).item() == pytest.approx(ce, rel=1e-12)
    d10 = losses.rld_loss(zs, zt, y, 10).item() - ce
    d20 = losses.rld_loss(zs, zt, y, 20).item() - ce
    assert d10 == pytest.approx(0.5 * d20, rel=1e-9)
    assert losses.rld_loss(zs, zt, y, 60).item() - ce == pytest.approx(d20, rel=1e-9)
    assert losses.warmup_factor(1, 20) == 0.05 and losses.warmup_factor(3, 0) == 1.0


def test_rld_equals_dkd_when_teacher_is_right_and_temperatures_equal(batch):
    zs, zt, y = batch
    zt = zt.clone()
    zt[torch.arange(len(y)), y] = zt.max(dim=1).values + 1.0  # teacher argmax == label everywhere
    for tau in (1.0, 4.0):
        for epoch in (3, 30):
            rld = losses.rld_loss(zs, zt, y, epoch, alpha_temperature=tau, temperature=tau)
            dkd = losses.dkd_loss(zs, zt, y, epoch, temperature=tau)
            assert rld.item() == pytest.approx(dkd.item(), rel=1e-12, abs=1e-12)
    # ... and differs once the teacher errs on some sample
    zt_wrong = zt.clone()
    zt_wrong[0, y[0]] -= 100.0
    assert abs(losses.rld_loss(zs, zt_wrong, y, 30).item() - losses.dkd_loss(zs, zt_wrong, y, 30, temperature=4.0)
               .item()) > 1e-3


def test_dkd_terms_match_definition(batch):
    zs, zt, y = batch
    tckd, nckd = losses.dkd_terms(zs, zt, y, 4.0)
    ref_t, ref_n = dkd_reference(zs.numpy(), zt.numpy(), y.numpy(), 4.0)
    assert tckd.item() == pytest.approx(ref_t, rel=1e-9)
    assert nckd.item() == pytest.approx(ref_n, rel=1e-9)


def test_mcd_gives_zero_gradient_to_masked_classes(batch):
    zs, zt, y = batch
    zs = zs.clone().requires_grad_(True)
    losses.mcd_loss(zs, zt, y, 4.0).backward()
    mask = losses.teacher_ge_mask(zt, y)
    assert torch.all(zs.grad[mask] == 0)
    assert torch.any(zs.grad[~mask] != 0)


def test_scd_gradient_on_ground_truth_logit(batch):
    """At tau_a = 1: dL_SCD / dz^S_y = p^S_y - p^T_max (per sample, divided by the batch size)."""
    zs, zt, y = batch
    zs = zs.clone().requires_grad_(True)
    losses.scd_loss(zs, zt, y, 1.0).backward()
    rows = torch.arange(len(y))
    expected = (F.softmax(zs.detach(), 1)[rows, y] - F.softmax(zt, 1).max(1).values) / len(y)
    torch.testing.assert_close(zs.grad[rows, y], expected, rtol=1e-9, atol=1e-12)


def test_worst_case_true_class_ranked_last_is_finite_and_mcd_is_zero():
    zs = torch.randn(4, 10, requires_grad=True)
    zt = torch.arange(10.0).repeat(4, 1)  # class 0 ranked last
    y = torch.zeros(4, dtype=torch.long)
    mcd = losses.mcd_loss(zs, zt, y, 4.0)
    assert mcd.item() == 0.0
    total = losses.rld_loss(zs, zt, y, 30)
    total.backward()
    assert torch.isfinite(total) and torch.isfinite(zs.grad).all()


def test_underflowing_probabilities_stay_finite():
    """The official code's log(sum(softmax)) is -inf here in float32; ours is finite, also with alpha = 0."""
    zs = torch.tensor([[-200.0, 200.0, 0.0], [300.0, -300.0, 0.0]], requires_grad=True)
    zt = torch.tensor([[0.0, 500.0, -500.0], [-400.0, 400.0, 0.0]])
    y = torch.tensor([0, 1])
    for fn in (lambda: losses.scd_loss(zs, zt, y, 1.0), lambda: losses.rld_loss(zs, zt, y, 30, alpha=0.0),
               lambda: losses.rld_loss(zs, zt, y, 30), lambda: losses.dkd_loss(zs, zt, y, 30),
               lambda: losses.kd_loss(zs, zt, y), lambda: losses.rc_loss(zs, zt, y), lambda: losses.lr_loss(zs, zt, y)):
        zs.grad = None
        value = fn()
        value.backward()
        assert torch.isfinite(value) and torch.isfinite(zs.grad).all()
    # the binary log-probabilities are exact where the naive form underflows
    logb = losses.binary_log_probs(zs.detach(), y, 1.0)
    assert logb[0, 0].item() == pytest.approx(-400.0, abs=1e-3)


def test_kd_matches_definition(batch):
    zs, zt, y = batch
    expected = 0.1 * ce_reference(zs.numpy(), y.numpy()) + 0.9 * kd_reference(zs.numpy(), zt.numpy(), 4.0)
    assert losses.kd_loss(zs, zt, y).item() == pytest.approx(expected, rel=1e-9)


def test_la_swaps_exactly_the_max_and_ground_truth_logits():
    zt = torch.tensor([[1.0, 5.0, 2.0, 3.0], [4.0, 0.0, 1.0, 2.0]])
    y = torch.tensor([3, 0])
    swapped = losses.swap_logits(zt, y)
    assert swapped.tolist() == [[1.0, 3.0, 2.0, 5.0], [4.0, 0.0, 1.0, 2.0]]  # row 2: teacher right -> unchanged
    zs = torch.randn(2, 4, dtype=torch.float64)
    expected = kd_reference(zs.numpy(), swapped.double().numpy(), 4.0)
    assert losses.la_loss(zs, zt.double(), y).item() == pytest.approx(expected, rel=1e-9)


def test_lr_revised_label_and_loss(batch):
    zs, zt, y = batch
    pt = F.softmax(zt, 1)
    rows = torch.arange(len(y))
    beta = 0.8 / (pt.max(1).values - pt[rows, y] + 1)
    expected_label = beta[:, None] * pt + (1 - beta[:, None]) * F.one_hot(y, 10)
    torch.testing.assert_close(losses.revised_soft_label(zt, y), expected_label)
    right = zt.argmax(1) == y
    assert 0 < right.sum() < len(y)
    expected = (ce_reference(zs[right].numpy(), y[right].numpy()) + 4 * np.mean((zs[right] - zt[right]).numpy() ** 2)
                + np.mean((F.softmax(zs[~right], 1) - expected_label[~right]).numpy() ** 2))
    assert losses.lr_loss(zs, zt, y).item() == pytest.approx(expected, rel=1e-9)


def test_rc_matches_definition(batch):
    zs, zt, y = batch
    target = zs.clone()
    rows = torch.arange(len(y))
    target[rows, y] = zs[rows, y] + zs.max(1).values
    torch.testing.assert_close(losses.rc_target_logits(zs, y), target)
    a = zs.numpy()
    expected = (ce_reference(a, y.numpy()) + kd_reference(a, zt.numpy(), 4.0)
                + 0.1 * kd_reference(a, target.numpy(), 4.0))
    assert losses.rc_loss(zs, zt, y).item() == pytest.approx(expected, rel=1e-9)


def test_logit_standardisation_is_zero_mean_unit_std(batch):
    z = losses.logit_standardize(batch[0] * 7 + 3)
    torch.testing.assert_close(z.mean(1), torch.zeros(16, dtype=z.dtype), atol=1e-9, rtol=0)
    torch.testing.assert_close(z.std(1), torch.ones(16, dtype=z.dtype), atol=1e-6, rtol=0)


def test_bad_shapes_are_rejected(batch):
    zs, zt, y = batch
    with pytest.raises(ValueError, match="same shape"):
        losses.scd_loss(zs, zt[:, :5], y)
    with pytest.raises(ValueError, match="target must have shape"):
        losses.mcd_loss(zs, zt, y[:3])
    with pytest.raises(ValueError, match=r"\(B, C\)"):
        losses.rld_loss(zs[0], zt[0], y[:1], 1)
