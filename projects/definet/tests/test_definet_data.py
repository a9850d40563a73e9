"""Data: augmentation, the offline splits and the real-dataset loader (layout checks)."""

import cv2
import numpy as np
import pytest
import torch

from definet.data import DataConfig, InpaintingFolder, PairDataset, augment, folder_splits, offline_splits


def test_augment_keeps_alignment():
    rng = np.random.default_rng(0)
    image = np.zeros((64, 64, 3), np.uint8)
    mask = np.zeros((64, 64), np.float32)
    image[20:40, 10:30] = 255
    mask[20:40, 10:30] = 1
    for _ in range(10):
        im, m = augment(image, mask, rng, crop_border=0.11, rotate_prob=0.4)
        assert im.shape[:2] == m.shape and 57 <= m.shape[0] <= 64 and m.min() >= 0 and m.max() <= 1
        # the white square and the mask move together
        assert np.corrcoef(im[..., 0].ravel() / 255.0, m.ravel())[0, 1] > 0.9


def test_offline_splits_disjoint_photos_and_shapes():
    cfg = DataConfig(source="offline", image_size=32, n_train=4, n_val=2, n_test_per_method=2)
    splits = offline_splits(cfg, seed=0)
    assert set(splits) == {"train", "val", "test/telea", "test/ns", "test/exemplar", "test/biharmonic"}
    x, m = splits["train"][0]
    assert x.shape == (3, 32, 32) and m.shape == (1, 32, 32) and x.dtype == torch.float32
    assert set(cfg.train_photos).isdisjoint(cfg.test_photos)
    again = offline_splits(cfg, seed=0)
    assert np.array_equal(splits["test/ns"].images, again["test/ns"].images)  # deterministic


def test_pair_dataset_resizes_and_normalises():
    images = [np.full((50, 70, 3), 128, np.uint8)]
    masks = [np.ones((50, 70), np.float32)]
    ds = PairDataset(images, masks, 32, train=False, cfg=DataConfig())
    x, m = ds[0]
    assert x.shape == (3, 32, 32) and m.shape == (1, 32, 32) and torch.allclose(m, torch.ones_like(m))
    with pytest.raises(ValueError, match="masks"):
        PairDataset(images, [], 32, train=False, cfg=DataConfig())


def test_missing_or_malformed_root(tmp_path):
    with pytest.raises(FileNotFoundError, match="train/images"):
        InpaintingFolder(tmp_path / "nope")
    (tmp_path / "train" / "images").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="missing"):
        InpaintingFolder(tmp_path)
    with pytest.raises(FileNotFoundError, match="--data-root"):
        folder_splits(None, DataConfig(), 0)


def test_folder_layout_loads(tmp_path):
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        (tmp_path / split / "images").mkdir(parents=True)
        (tmp_path / split / "labels").mkdir(parents=True)
        for i in range(2):
            cv2.imwrite(str(tmp_path / split / "images" / f"a{i}.jpg"), rng.integers(0, 255, (30, 40, 3), np.uint8))
            label = np.zeros((30, 40), np.uint8)
            label[5:15, 5:25] = 255
            cv2.imwrite(str(tmp_path / split / "labels" / f"a{i}.png"), label)
    splits = folder_splits(tmp_path, DataConfig(image_size=16), 0)
    assert len(splits["train"]) == 2 and splits["test"].names == ["a0.jpg", "a1.jpg"]
    assert splits["test"].masks[0].shape == (30, 40) and splits["test"].masks[0].sum() == 200
    x, m = splits["train"][1]
    assert x.shape == (3, 16, 16) and m.shape == (1, 16, 16)
    (tmp_path / "test" / "labels" / "a1.png").unlink()
    with pytest.raises(FileNotFoundError, match="a1"):
        InpaintingFolder(tmp_path).pairs("test")
