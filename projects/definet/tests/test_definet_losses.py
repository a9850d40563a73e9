"""Losses and edge targets against independent computations (numpy / OpenCV, the official recipe)."""

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from definet.losses import LossConfig, boundary_loss, definet_loss, edge_targets, structure_loss, weight_map


def _np_weight(mask: np.ndarray) -> np.ndarray:
    """1 + 5 |box31(m) - m| with zero padding counted (scipy-free: an explicit padded cumulative sum)."""
    h, w = mask.shape
    padded = np.pad(mask, 15)
    integral = np.pad(padded.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    box = (integral[31:31 + h, 31:31 + w] - integral[:h, 31:31 + w] - integral[31:31 + h, :w] + integral[:h, :w]) / 961
    return 1 + 5 * np.abs(box - mask)


def _np_structure(logits: np.ndarray, mask: np.ndarray, official: bool) -> float:
    losses = []
    p = 1 / (1 + np.exp(-logits))
    bce_all = -(mask * np.log(p) + (1 - mask) * np.log(1 - p))
    for z, m, b in zip(p, mask, bce_all):
        w = _np_weight(m)
        wbce = bce_all.mean() if official else (w * b).sum() / w.sum()
        inter = (z * m * w).sum()
        union = ((z + m) * w).sum()
        losses.append(wbce + 1 - (inter + 1) / (union - inter + 1))
    return float(np.mean(losses))


@pytest.mark.parametrize("official", [False, True])
def test_structure_loss_matches_numpy(official):
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 40, 48))
    mask = np.zeros((3, 40, 48))
    mask[0, 5:20, 10:30] = 1
    mask[1, 30:, :] = 1
    mask[2] = rng.random((40, 48)) > 0.7
    got = structure_loss(torch.tensor(logits)[:, None].float(), torch.tensor(mask)[:, None].float(),
                         official_bce=official)
    assert got.item() == pytest.approx(_np_structure(logits, mask, official), rel=1e-5)


def test_weight_map_values():
    mask = torch.zeros(1, 1, 64, 64)
    mask[..., 16:48, 16:48] = 1
    w = weight_map(mask)
    assert torch.allclose(w, torch.from_numpy(_np_weight(mask[0, 0].numpy())).float(), atol=1e-5)
    assert w[0, 0, 32, 32] == pytest.approx(1.0)  # deep inside: the 31x31 window is all foreground
    # at the region's corner the window holds 16 x 16 foreground pixels: w = 1 + 5 (1 - 256 / 961)
    assert w[0, 0, 16, 16].item() == pytest.approx(1 + 5 * (1 - 256 / 961), rel=1e-5)
    # far from the region the window is all background (w = 1); the largest weight is at the region's inner corners
    assert w.min().item() == pytest.approx(1.0)
    assert w.max().item() == pytest.approx(1 + 5 * (1 - 256 / 961), rel=1e-5)


def test_official_bce_is_plain_mean_bce():
    rng = np.random.default_rng(1)
    logits, edge = torch.tensor(rng.normal(size=(2, 1, 32, 32))).float(), torch.zeros(2, 1, 32, 32)
    edge[:, :, 10:12, 5:25] = 1
    plain = F.binary_cross_entropy_with_logits(logits, edge)
    assert boundary_loss(logits, edge, official_bce=True).item() == pytest.approx(plain.item())
    assert boundary_loss(logits, edge).item() != pytest.approx(plain.item(), rel=1e-3)  # weighting matters


def _official_edge(mask01: np.ndarray) -> np.ndarray:
    """utils/edge_extract.py of the official code, on a 0/255 uint8 mask (numpy uint8 wrap-around)."""
    img = (mask01 * 255).astype(np.uint8)
    eroded = cv2.erode(img, np.ones((5, 5), np.uint8), iterations=1)
    sharpened = cv2.filter2D(img, -1, np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], np.float32))
    edge = eroded - sharpened
    edge[edge > 0] = 255
    return edge // 255


def test_edge_targets_equal_official_recipe():
    rng = np.random.default_rng(2)
    for _ in range(5):
        mask = (cv2.GaussianBlur(rng.random((48, 56)), (0, 0), 4) > 0.5).astype(np.uint8)
        mask[:6, :] = 1  # a region touching the image border
        got = edge_targets(torch.from_numpy(mask).float()).numpy()
        assert np.array_equal(got, _official_edge(mask))


def test_edge_targets_thin_band_inside_boundary():
    mask = torch.zeros(64, 64)
    mask[20:40, 10:50] = 1
    edge = edge_targets(mask)
    assert set(edge.unique().tolist()) == {0.0, 1.0}
    assert edge[mask == 0].sum() == 0  # inside the region only
    assert edge[20:22, 10:50].eq(1).all() and edge[24:36, 14:46].eq(0).all()  # 2-px band, hollow inside
    assert edge.sum() == 20 * 40 - 16 * 36
    full = torch.ones(1, 1, 32, 32)
    assert edge_targets(full).sum() == 0 and edge_targets(torch.zeros(32, 32)).sum() == 0  # border: no edge
    assert edge_targets(mask[None, None]).shape == (1, 1, 64, 64)


def test_total_loss_weights():
    rng = np.random.default_rng(3)
    seg, edge = (torch.tensor(rng.normal(size=(2, 1, 32, 32))).float() for _ in range(2))
    mask = torch.zeros(2, 1, 32, 32)
    mask[..., 8:24, 8:20] = 1
    out = definet_loss(edge, seg, mask, LossConfig())
    assert out["seg"].item() == pytest.approx(5 * structure_loss(seg, mask).item(), rel=1e-6)
    assert out["edge"].item() == pytest.approx(boundary_loss(edge, edge_targets(mask)).item(), rel=1e-6)
    assert out["loss"].item() == pytest.approx(out["seg"].item() + out["edge"].item(), rel=1e-6)
    no_edge = definet_loss(None, seg, mask, LossConfig())
    assert no_edge["edge"].item() == 0.0


def test_loss_shape_errors():
    with pytest.raises(ValueError, match="same shape"):
        structure_loss(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 9))
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        structure_loss(torch.zeros(1, 2, 8, 8), torch.zeros(1, 2, 8, 8))
