"""Heat maps (attention mask, CAM / Grad-CAM) and localisation scores against hand-worked cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nlran.baselines import COVNet, resnet3d
from nlran.heatmaps import (
    attention_heatmap,
    cam_heatmap,
    chance_pointing,
    gradcam_heatmap,
    heatmaps_for,
    localisation_scores,
    pointing_game,
    topk_iou,
    voxel_auc,
)
from nlran.model import NLRAN


def _mask():
    mask = np.zeros((4, 4, 4), bool)
    mask[1:3, 1:3, 1] = True  # 4 lesion voxels
    return mask


def test_pointing_game_hand_cases():
    mask = _mask()
    heat = np.zeros(mask.shape)
    heat[1, 1, 1] = 1.0
    assert pointing_game(heat, mask) == 1.0
    heat[0, 0, 0] = 2.0
    assert pointing_game(heat, mask) == 0.0
    assert pointing_game(np.ones(mask.shape), mask) == pytest.approx(4 / 64)  # constant map: chance
    heat[1, 1, 1] = 2.0  # two tied maxima, one inside
    assert pointing_game(heat, mask) == 0.5


def test_voxel_auc_hand_cases():
    mask = _mask()
    assert voxel_auc(mask.astype(float), mask) == 1.0
    assert voxel_auc(1.0 - mask, mask) == 0.0
    assert voxel_auc(np.ones(mask.shape), mask) == 0.5
    # 4 lesion voxels with score 1; 60 background voxels, 20 of them also 1, 40 at 0:
    # AUC = P(lesion > bg) + 0.5 P(tie) = 40/60 + 0.5 * 20/60 = 5/6.
    heat = mask.astype(float)
    heat.ravel()[np.flatnonzero(~mask.ravel())[:20]] = 1.0
    assert voxel_auc(heat, mask) == pytest.approx(5 / 6)


def test_topk_iou_hand_case():
    mask = _mask()
    heat = mask.astype(float) * 2
    assert topk_iou(heat, mask) == 1.0
    heat[1, 1, 1] = 0.0  # 3 of the 4 hottest voxels are lesion: IoU = 3 / 5
    heat[0, 0, 0] = 1.0
    assert topk_iou(heat, mask) == pytest.approx(3 / 5)


def _chest():
    """A hand-made 'chest': air outside a lung box (3 x 4 x 4 = 48 voxels) with a 2-voxel lesion inside."""
    lung = np.zeros((5, 6, 6), bool)
    lung[1:4, 1:5, 1:5] = True
    lesion = np.zeros_like(lung)
    lesion[2, 2, 2:4] = True
    return lung, lesion


def test_lung_restricted_scores_on_a_hand_made_volume():
    lung, lesion = _chest()
    # A map that is just "bright on the lungs" (1 in the lungs, 0 outside) separates lesion from non-lesion
    # voxels over the whole volume (every lesion voxel is in the lungs) but is uninformative inside them.
    lung_map = lung.astype(float)
    whole = 1.0 * (180 - 48) / (180 - 2) + 0.5 * (48 - 2) / (180 - 2)  # P(lesion > bg) + 0.5 P(tie)
    assert voxel_auc(lung_map, lesion) == pytest.approx(whole)
    assert voxel_auc(lung_map, lesion, lung) == 0.5
    assert pointing_game(lung_map, lesion, lung) == pytest.approx(2 / 48) == chance_pointing(lesion, lung)
    # Inside the lungs: lesion voxels 0.9 and 0.5; healthy lung 0.6 (x 10), 0.1 (x 36); outside the lungs
    # 5.0 (ignored, although it is the global maximum). Pairs (lesion > healthy): 0.9 beats 46, 0.5 beats 36.
    heat = np.where(lung, 0.1, 5.0)
    heat.ravel()[np.flatnonzero((lung & ~lesion).ravel())[:10]] = 0.6
    heat[2, 2, 2], heat[2, 2, 3] = 0.9, 0.5
    assert voxel_auc(heat, lesion, lung) == pytest.approx((46 + 36) / (2 * 46))
    assert pointing_game(heat, lesion, lung) == 1.0 and pointing_game(heat, lesion) == 0.0
    # top-2 lung voxels: 0.9 (lesion) and one of the tied 0.6 healthy voxels -> IoU 1 / 3
    assert topk_iou(heat, lesion, lung) == pytest.approx(1 / 3)
    scores = localisation_scores(heat[None], lesion[None], lung[None])
    assert scores["voxel_auc"] == pytest.approx((46 + 36) / 92)
    assert scores["pointing_chance"] == pytest.approx(2 / 48)
    with pytest.raises(ValueError, match="region shape"):
        voxel_auc(heat, lesion, lung[:, :, :3])


def test_cam_matches_its_equation_and_gradcam_is_its_positive_part():
    """CAM (Zhou et al. Eq. 2) by hand from the features and fc weights; for a GAP + linear head Grad-CAM's
    weights are w_c / N, so Grad-CAM = ReLU(CAM) up to the per-volume normalisation."""
    from nlran.heatmaps import features_and_logits

    torch.manual_seed(0)
    model = resnet3d((4, 8, 8, 16), (1, 1, 1, 1), conv1_stride=1, max_pool=False, stage_strides=(2, 2, 1)).eval()
    x = torch.rand(3, 1, 8, 8, 8)
    labels = torch.tensor([2, 0, 1])
    with torch.no_grad():
        feats, logits = features_and_logits(model, x)
    torch.testing.assert_close(logits, model(x))
    raw = (model.fc.weight[labels][:, :, None, None, None] * feats).sum(1)  # (3, 2, 2, 2)
    up = torch.nn.functional.interpolate(raw[:, None], size=(8, 8, 8), mode="trilinear")[:, 0]
    lo, hi = up.flatten(1).min(1).values, up.flatten(1).max(1).values
    expected = (up - lo[:, None, None, None]) / (hi - lo)[:, None, None, None]
    torch.testing.assert_close(cam_heatmap(model, x, labels), expected)
    up_pos = torch.nn.functional.interpolate(raw.clamp_min(0)[:, None], size=(8, 8, 8), mode="trilinear")[:, 0]
    lo, hi = up_pos.flatten(1).min(1).values, up_pos.flatten(1).max(1).values
    expected_grad = (up_pos - lo[:, None, None, None]) / (hi - lo)[:, None, None, None]
    torch.testing.assert_close(gradcam_heatmap(model, x, labels), expected_grad, rtol=1e-4, atol=1e-5)
    # Each volume gets its own class: the batch equals the volumes one at a time, and the true class is
    # not the predicted one in general.
    for i in range(3):
        torch.testing.assert_close(gradcam_heatmap(model, x[i:i + 1], labels[i:i + 1])[0],
                                   gradcam_heatmap(model, x, labels)[i], rtol=1e-4, atol=1e-5)
    other = (logits.argmax(1) + 1) % 3
    assert not torch.allclose(cam_heatmap(model, x, other), cam_heatmap(model, x, logits.argmax(1)))
    torch.testing.assert_close(cam_heatmap(model, x), cam_heatmap(model, x, logits.argmax(1)))


def test_localisation_rejects_bad_inputs():
    with pytest.raises(ValueError, match="shape"):
        pointing_game(np.zeros((4, 4, 3)), _mask())
    with pytest.raises(ValueError, match="empty"):
        voxel_auc(np.zeros((4, 4, 4)), np.zeros((4, 4, 4), bool))
    with pytest.raises(ValueError, match="no volume with a lesion"):
        localisation_scores(np.zeros((2, 4, 4, 4)), np.zeros((2, 4, 4, 4), bool))
    heats = np.stack([_mask() * 1.0, np.zeros((4, 4, 4))])
    scores = localisation_scores(heats, np.stack([_mask(), np.zeros((4, 4, 4), bool)]))
    assert scores["n_volumes"] == 1 and scores["voxel_auc"] == 1.0


def test_heatmaps_are_upsampled_to_the_input():
    torch.manual_seed(0)
    model = NLRAN(widths=(4, 8, 8, 16, 16)).eval()
    x = torch.rand(2, 1, 16, 20, 24)
    att = attention_heatmap(model, x)
    assert att.shape == (2, 16, 20, 24) and ((att > 0) & (att < 1)).all()
    assert cam_heatmap(model, x).shape == (2, 16, 20, 24)
    assert gradcam_heatmap(model, x).shape == (2, 16, 20, 24)
    maps = heatmaps_for(resnet3d((4, 8, 8, 16), (1, 1, 1, 1)), x)
    assert set(maps) == {"cam", "gradcam"} and maps["cam"].shape == (2, 16, 20, 24)
    assert heatmaps_for(COVNet((4, 8, 8, 16), (1, 1, 1, 1)), x) == {}
    with pytest.raises(ValueError, match="no attention"):
        attention_heatmap(NLRAN(widths=(4, 8, 8, 16, 16), use_attention=False), x)


def test_cpu_config_cam_layers_are_at_least_3_cubed():
    """CAM / Grad-CAM come from the last feature map; at 1^3 (RAN / ResNet strides at 32^3) they are constant.
    The CPU config downsamples every 3-D model by 8, so the maps (3^3 at 24^3) can localise lesions."""
    from pathlib import Path

    from nlran.config import Config
    from nlran.engine import build_model
    from nlran.heatmaps import features_and_logits
    from shared.runs.cli import apply_overrides, load_config_file

    cfg = apply_overrides(Config(), load_config_file(Path(__file__).resolve().parents[1] / "configs" / "cpu.yaml"))
    x = torch.rand(1, 1, *cfg.volume_size)
    for arch in ("nlran", "resnet3d", "cbam3d"):
        model = build_model(apply_overrides(cfg, {"arch": arch})).eval()
        feats, _ = features_and_logits(model, x)
        assert min(feats.shape[2:]) >= 3, (arch, feats.shape)
        cam = cam_heatmap(model, x)
        assert cam.shape == (1, *cfg.volume_size) and cam.std() > 0  # not a constant map
