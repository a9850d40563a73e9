"""Heat maps (attention mask, MONAI CAM / Grad-CAM) and localisation scores against hand-worked cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nlran.baselines import COVNet, resnet3d
from nlran.heatmaps import (
    attention_heatmap,
    cam_heatmap,
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


def test_cpu_config_cam_layers_are_at_least_4_cubed():
    """CAM / Grad-CAM come from the last feature map; at 1^3 (RAN / ResNet strides at 32^3) they are constant.
    The CPU config downsamples every 3-D model by 8, so the maps can localise lesions."""
    from pathlib import Path

    from shared.runs.cli import apply_overrides, load_config_file

    from nlran.config import Config
    from nlran.engine import build_model
    from nlran.heatmaps import cam_layers

    cfg = apply_overrides(Config(), load_config_file(Path(__file__).resolve().parents[1] / "configs" / "cpu.yaml"))
    x = torch.rand(1, 1, *cfg.volume_size)
    for arch in ("nlran", "resnet3d", "cbam3d"):
        model = build_model(apply_overrides(cfg, {"arch": arch})).eval()
        shapes = []
        model.get_submodule(cam_layers(model)[0]).register_forward_hook(lambda m, i, o: shapes.append(o.shape))
        with torch.no_grad():
            model(x)
        assert min(shapes[0][2:]) >= 4, (arch, shapes[0])
        cam = cam_heatmap(model, x)
        assert cam.shape == (1, *cfg.volume_size) and cam.std() > 0  # not a constant map
