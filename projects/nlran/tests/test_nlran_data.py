"""Data: patient-wise splits, the phantom pipeline, the CC-CCII loader, and the classification metrics."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from nlran.config import Config
from nlran.data import (
    CCCCIIRoot,
    ccccii_splits,
    clear_phantom_cache,
    intensity_transform,
    natural_key,
    phantom_splits,
    split_indices,
)
from nlran.engine import classification_metrics


def test_split_by_patient_never_shares_a_patient():
    groups = np.repeat(np.arange(50), 3)  # 50 patients, 3 scans each
    idx = split_indices(groups, (0.8, 0.1, 0.1), seed=0)
    sets = [set(groups[i]) for i in idx.values()]
    assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
    assert sum(len(i) for i in idx.values()) == 150
    assert [len(idx[k]) for k in ("train", "val", "test")] == [120, 15, 15]
    with pytest.raises(ValueError, match="sum"):
        split_indices(groups, (0.8, 0.1, 0.2), seed=0)


def test_hu_window_and_resize():
    t = intensity_transform((-1000.0, 0.0), (4, 4, 4))
    hu = np.full((1, 8, 8, 8), -500.0, np.float32)
    hu[0, :4] = -2000.0
    out = np.asarray(t(hu))
    assert out.shape == (1, 4, 4, 4)
    np.testing.assert_allclose(out[0, :2], 0.0, atol=1e-6)
    np.testing.assert_allclose(out[0, 2:], 0.5, atol=1e-6)


def test_intensity_transform_equals_monai_window_and_resize():
    from monai.transforms import Compose, Resize, ScaleIntensityRange

    rng = np.random.default_rng(0)
    hu = rng.uniform(-1500, 900, size=(1, 10, 13, 7)).astype(np.float32)
    for size in [(6, 8, 9), (10, 13, 7)]:
        monai = Compose([ScaleIntensityRange(a_min=-1200, a_max=600, b_min=0.0, b_max=1.0, clip=True),
                         Resize(spatial_size=size, mode="trilinear")])
        np.testing.assert_allclose(intensity_transform((-1200.0, 600.0), size)(hu).numpy(), np.asarray(monai(hu)),
                                   atol=1e-6)


def test_phantom_splits_are_windowed_deterministic_and_masked_by_class():
    cfg = Config(dataset="phantom", volume_size=(16, 16, 16), n_volumes=30, seed=3)
    a = phantom_splits(cfg)
    assert phantom_splits(cfg) is a  # cached per process
    clear_phantom_cache()
    b = phantom_splits(cfg)
    assert b is not a
    assert [len(a[k]) for k in ("train", "val", "test")] == [24, 3, 3]
    assert torch.equal(a["train"].volumes, b["train"].volumes)
    x, y = a["train"][0]
    assert x.shape == (1, 16, 16, 16) and 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    has_lesion = a["train"].lesion_masks.flatten(1).any(1)
    assert torch.equal(has_lesion, a["train"].labels != 2)
    lungs = a["train"].lung_masks
    assert lungs.shape == a["train"].lesion_masks.shape and lungs.flatten(1).any(1).all()
    assert not (a["train"].lesion_masks & ~lungs).any()  # lesions lie inside the lungs


def test_phantom_split_sizes_give_exact_counts():
    cfg = Config(dataset="phantom", volume_size=(12, 12, 12), split_sizes=(7, 2, 5), seed=1)
    splits = phantom_splits(cfg)
    assert [len(splits[k]) for k in ("train", "val", "test")] == [7, 2, 5]
    with pytest.raises(ValueError, match="split_sizes"):
        phantom_splits(Config(dataset="phantom", volume_size=(12, 12, 12), split_sizes=(7, 0, 5)))


def _write_ccccii(root, patients=4, scans=1, slices=5):
    for folder in ("NCP", "CP", "Normal"):
        for p in range(patients):
            for s in range(scans):
                scan = root / folder / f"{folder.lower()}{p}" / f"{s}"
                scan.mkdir(parents=True)
                for k in range(slices):
                    cv2.imwrite(str(scan / f"{k:04d}.png"), np.full((20, 24), 40 * k, np.uint8))


def test_ccccii_loader_reads_the_official_layout(tmp_path):
    _write_ccccii(tmp_path, patients=10, scans=2)
    cfg = Config(dataset="ccccii", data_root=str(tmp_path), volume_size=(4, 8, 8))
    splits = ccccii_splits(cfg)
    assert sum(len(s) for s in splits.values()) == 60
    patients = [{p for _, _, p in s.scans} for s in splits.values()]
    assert not (patients[0] & patients[1]) and not (patients[0] & patients[2])
    x, y = splits["train"][0]
    assert x.shape == (1, 4, 8, 8) and 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    assert float(x[0, 0].mean()) < float(x[0, -1].mean())  # slice order kept (brighter with index)
    assert set(splits["train"].labels.tolist()) == {0, 1, 2}


def test_natural_slice_order_for_names_without_zero_padding(tmp_path):
    from pathlib import Path

    names = ["10.png", "2.png", "1.png", "0.png", "9.png", "11.png"]
    assert [p.name for p in sorted(map(Path, names), key=natural_key)] == [
        "0.png", "1.png", "2.png", "9.png", "10.png", "11.png"]
    assert sorted(names) != [p.name for p in sorted(map(Path, names), key=natural_key)]  # a plain sort is wrong
    padded = ["0010.png", "0002.png", "0001.png"]
    assert [p.name for p in sorted(map(Path, padded), key=natural_key)] == sorted(padded)
    # A scan with 12 unpadded slices whose brightness rises with the slice number is stacked in that order.
    scan = tmp_path / "NCP" / "p0" / "s0"
    scan.mkdir(parents=True)
    for k in range(12):
        cv2.imwrite(str(scan / f"{k}.png"), np.full((6, 6), 20 * k, np.uint8))
    for folder in ("CP", "Normal"):
        (tmp_path / folder / "p" / "s").mkdir(parents=True)
    volume = CCCCIIRoot(tmp_path).read_scan(scan)
    np.testing.assert_array_equal(volume[:, 0, 0], 20 * np.arange(12))


def test_ccccii_missing_or_malformed_root_names_the_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match="NCP/"):
        CCCCIIRoot(tmp_path / "nowhere")
    (tmp_path / "NCP").mkdir()
    with pytest.raises(FileNotFoundError, match="missing"):
        CCCCIIRoot(tmp_path)
    (tmp_path / "CP").mkdir()
    (tmp_path / "Normal").mkdir()
    with pytest.raises(FileNotFoundError, match="patient_id"):
        CCCCIIRoot(tmp_path).scans()
    with pytest.raises(FileNotFoundError, match="no data root"):
        ccccii_splits(Config(dataset="ccccii"))


def test_ccccii_corrupt_slice_is_a_clear_error(tmp_path):
    _write_ccccii(tmp_path, patients=1)
    (tmp_path / "NCP" / "ncp0" / "0" / "0002.png").write_bytes(b"not a png")
    root = CCCCIIRoot(tmp_path)
    with pytest.raises(ValueError, match="cannot read slice"):
        root.read_scan(tmp_path / "NCP" / "ncp0" / "0")


def test_classification_metrics_hand_case():
    labels = np.array([0, 0, 1, 1, 2, 2])
    probs = np.array([[0.8, 0.1, 0.1], [0.4, 0.5, 0.1], [0.1, 0.8, 0.1],
                      [0.2, 0.7, 0.1], [0.1, 0.2, 0.7], [0.6, 0.1, 0.3]])
    m = classification_metrics(labels, probs)
    # predictions [0, 1, 1, 1, 2, 0]; per class precision (1/2, 2/3, 1), recall (1/2, 1, 1/2)
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["precision_macro"] == pytest.approx((1 / 2 + 2 / 3 + 1) / 3)
    assert m["recall_macro"] == pytest.approx((1 / 2 + 1 + 1 / 2) / 3)
    f1 = [1 / 2, 2 * (2 / 3) / (2 / 3 + 1), 2 * 0.5 / 1.5]
    assert m["f1_macro"] == pytest.approx(np.mean(f1))
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    # one-vs-rest AUC of class 2: positives {0.7, 0.3}, negatives {0.1 x4}: 1.0; class 0: positives
    # {0.8, 0.4}, negatives {0.1, 0.2, 0.1, 0.6}: (4 + 3) / 8; class 1: positives {0.8, 0.7}, negatives
    # {0.1, 0.5, 0.2, 0.1}: 1.0.
    assert m["auc_macro"] == pytest.approx((7 / 8 + 1 + 1) / 3)


def test_auc_is_nan_when_a_class_is_absent():
    m = classification_metrics(np.array([0, 1, 1]), np.array([[0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.5, 0.4, 0.1]]))
    assert np.isnan(m["auc_macro"]) and m["accuracy"] == pytest.approx(2 / 3)
