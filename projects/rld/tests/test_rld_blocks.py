"""Shapes of the networks, the digits splits, the controlled teacher mistakes and the real-data errors."""

from __future__ import annotations

import pytest
import torch

from rld import data, engine
from rld.config import Config
from rld.models import ARCHITECTURES, build_model

CIFAR_ARCHS = ["resnet8x4", "resnet32x4", "resnet20", "vgg8", "vgg13", "wrn_40_1", "wrn_16_2", "MobileNetV2",
               "ShuffleV2", "ResNet50"]


@pytest.mark.parametrize("name", CIFAR_ARCHS)
def test_cifar_models_map_images_to_logits(name):
    model = build_model(name, 100).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 100) and torch.isfinite(out).all()


def test_known_sizes_of_cifar_resnets():
    """Parameter counts of the CRD/mdistiller CIFAR ResNets (resnet8x4 ~1.23M, resnet32x4 ~7.43M, resnet20 ~0.28M)."""
    count = lambda m: sum(p.numel() for p in m.parameters()) / 1e6  # noqa: E731
    assert count(build_model("resnet8x4", 100)) == pytest.approx(1.23, abs=0.02)
    assert count(build_model("resnet32x4", 100)) == pytest.approx(7.43, abs=0.02)
    assert count(build_model("resnet20", 100)) == pytest.approx(0.28, abs=0.01)


def test_imagenet_students_and_mlps():
    with torch.no_grad():
        assert build_model("MobileNetV1", 1000).eval()(torch.randn(1, 3, 64, 64)).shape == (1, 1000)
        assert build_model("ResNet18", 1000).eval()(torch.randn(1, 3, 64, 64)).shape == (1, 1000)
        assert build_model("mlp_student", 10)(torch.rand(5, 1, 8, 8)).shape == (5, 10)
    assert {"ResNet34", "ResNet50_imagenet", "wrn_40_2", "resnet110", "resnet56", "resnet32"} <= set(ARCHITECTURES)
    with pytest.raises(ValueError, match="unknown architecture"):
        build_model("resnet9000", 10)


def test_digits_splits_are_disjoint_stratified_and_seeded():
    a = data.digits_splits(0)
    assert a.test_x.shape == (898, 1, 8, 8) and len(a.student_y) == 899 and torch.equal(a.teacher_y, a.student_y)
    counts = torch.bincount(a.test_y, minlength=10)
    assert counts.min() >= 85 and counts.max() <= 95
    weak = data.digits_splits(0, teacher_fraction=0.15, student_fraction=0.85)
    assert len(weak.teacher_y) + len(weak.student_y) == 899
    rows = lambda x: {tuple(r.flatten().tolist()) for r in x}  # noqa: E731
    assert not rows(weak.teacher_x) & rows(weak.student_x) - rows(weak.test_x)  # disjoint (up to duplicate images)
    assert torch.equal(data.digits_splits(3).test_x, data.digits_splits(3).test_x)
    assert not torch.equal(data.digits_splits(3).test_x, data.digits_splits(4).test_x)
    with pytest.raises(ValueError, match="teacher_fraction"):
        data.digits_splits(0, teacher_fraction=0.0)


def test_inject_teacher_mistakes_swaps_gt_with_runner_up():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 10, (200,), generator=g)
    logits = torch.randn(200, 10, generator=g)
    logits[torch.arange(200), y] += 10  # a perfect teacher
    new, corrupted = data.inject_teacher_mistakes(logits, y, 0.4, torch.Generator().manual_seed(1))
    assert corrupted.sum() == 80
    assert ((new.argmax(1) != y) == corrupted).all()
    runner_up = logits.scatter(1, y[:, None], -1e9).argmax(1)
    assert (new.argmax(1)[corrupted] == runner_up[corrupted]).all()
    # only the two logits moved, and their values were exchanged
    changed = (new != logits).sum(1)
    assert changed[corrupted].eq(2).all() and changed[~corrupted].eq(0).all()
    torch.testing.assert_close(new.sort(1).values, logits.sort(1).values)
    assert data.inject_teacher_mistakes(logits, y, 0.0, g)[1].sum() == 0
    with pytest.raises(ValueError, match="error rate"):
        data.inject_teacher_mistakes(logits, y, 1.5, g)


def test_learning_rate_schedule_is_mdistillers():
    cfg = Config()
    assert engine.learning_rate(cfg, 150) == pytest.approx(0.05)
    assert engine.learning_rate(cfg, 151) == pytest.approx(0.005)
    assert engine.learning_rate(cfg, 240) == pytest.approx(0.00005)


def test_same_t_and_logit_stand_flags():
    cfg = Config()
    cfg.rld.same_t = True
    assert engine.rld_weights(cfg)["alpha_temperature"] == 4.0
    cfg.rld.logit_stand = True
    w = engine.rld_weights(cfg)
    assert (w["alpha"], w["beta"], w["temperature"], w["alpha_temperature"]) == (9.0, 72.0, 2.0, 2.0)


def test_missing_real_data_roots_name_the_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match="cifar-100-python"):
        data.cifar100_datasets(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="no data root given"):
        data.cifar100_datasets(None)
    (tmp_path / "train").mkdir()
    with pytest.raises(FileNotFoundError, match=r"val/<wnid>"):
        data.imagenet_datasets(tmp_path)
