"""Data: the offline inpainted-photo generator and the paper's datasets in the official folder layout.

Both give ``(image (3, S, S) normalised float, mask (1, S, S) float in [0, 1])`` pairs. Training samples get
the official augmentations (``data/dataset.py``): random horizontal flip, random centre crop (border up to
40 px of 352, i.e. 11.4%), random rotation with probability 0.4 by an integer angle in [-90, 90) (bicubic,
black fill), then a resize to the training size. The edge target is derived from the (augmented) mask in
the loss (:func:`definet.losses.edge_targets`).
"""

from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from shared.data import DatasetRoot

# the official normalisation (data/dataset.py): different statistics for training and testing
TRAIN_MEAN, TRAIN_STD = (0.448, 0.433, 0.397), (0.230, 0.226, 0.235)
TEST_MEAN, TEST_STD = (0.485, 0.430, 0.387), (0.239, 0.225, 0.230)

# disjoint photo splits of shared.data.photos() for the offline default (no photo is seen in training and test)
TRAIN_PHOTOS = ("astronaut", "chelsea", "hubble_deep_field", "immunohistochemistry", "rocket", "china",
                "camera", "brick", "clock", "grass", "moon", "page", "text")
TEST_PHOTOS = ("coffee", "flower", "coins", "gravel")


@dataclass
class DataConfig:
    """Data and augmentation. Defaults are the paper's (a real dataset folder at 352 px)."""

    source: Literal["folder", "offline"] = "folder"  # folder: --data-root in the official layout
    image_size: int = 352
    augment: bool = True
    crop_border: float = 40 / 352  # official: centre crop by up to 40 px at 352 px
    rotate_prob: float = 0.4
    # offline generator (shared.data.inpainting) -- used when source == "offline"
    train_methods: tuple[str, ...] = ("telea", "ns", "exemplar")
    heldout_methods: tuple[str, ...] = ("biharmonic",)  # cross-method test only
    n_train: int = 480
    n_val: int = 48
    n_test_per_method: int = 48
    train_photos: tuple[str, ...] = TRAIN_PHOTOS
    test_photos: tuple[str, ...] = TEST_PHOTOS
    jpeg_quality: tuple[int, int] = (75, 95)
    crop_scale: tuple[float, float] = (1.0, 3.0)


def to_tensor(image: np.ndarray, mean=TEST_MEAN, std=TEST_STD) -> torch.Tensor:
    """uint8 (H, W, 3) RGB -> normalised float (3, H, W)."""
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255.0
    return (x - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]


def denormalize(x: torch.Tensor, mean=TEST_MEAN, std=TEST_STD) -> np.ndarray:
    """Inverse of :func:`to_tensor` for display: (3, H, W) -> float (H, W, 3) in [0, 1]."""
    img = x.detach().cpu() * torch.tensor(std)[:, None, None] + torch.tensor(mean)[:, None, None]
    return img.clamp(0, 1).permute(1, 2, 0).numpy()


def augment(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, *, crop_border: float,
            rotate_prob: float) -> tuple[np.ndarray, np.ndarray]:
    """Official training augmentation on one (H, W, 3) uint8 image and its (H, W) float mask."""
    if rng.integers(2):
        image, mask = image[:, ::-1], mask[:, ::-1]
    h, w = mask.shape
    border_h, border_w = max(1, round(crop_border * h)), max(1, round(crop_border * w))
    ch, cw = int(rng.integers(h - border_h, h)), int(rng.integers(w - border_w, w))
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    image, mask = image[y0:y0 + ch, x0:x0 + cw], mask[y0:y0 + ch, x0:x0 + cw]
    if rng.random() < rotate_prob:
        angle = float(rng.integers(-90, 90))
        rot = cv2.getRotationMatrix2D(((cw - 1) / 2, (ch - 1) / 2), angle, 1.0)
        image = cv2.warpAffine(np.ascontiguousarray(image), rot, (cw, ch), flags=cv2.INTER_CUBIC)
        mask = cv2.warpAffine(np.ascontiguousarray(mask), rot, (cw, ch), flags=cv2.INTER_CUBIC)
    return np.ascontiguousarray(image), np.clip(mask, 0, 1)


class PairDataset(Dataset):
    """Image/mask pairs held in memory (uint8 images, float masks), resized to ``size``, optionally augmented.

    Augmentation randomness comes from ``numpy.random.default_rng([seed, epoch, index])``, so an epoch is
    reproducible (and a resumed run sees the same samples) whatever the loader's order; set :attr:`epoch`.
    """

    def __init__(self, images: list[np.ndarray] | np.ndarray, masks: list[np.ndarray] | np.ndarray, size: int, *,
                 train: bool, cfg: DataConfig, seed: int = 0, names: list[str] | None = None):
        if len(images) != len(masks):
            raise ValueError(f"{len(images)} images but {len(masks)} masks")
        self.images, self.masks, self.size, self.train = images, masks, size, train
        self.cfg, self.seed, self.epoch = cfg, seed, 0
        self.names = names or [f"{i:05d}" for i in range(len(images))]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self.images[index], self.masks[index].astype(np.float32)
        if self.train and self.cfg.augment:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            image, mask = augment(image, mask, rng, crop_border=self.cfg.crop_border, rotate_prob=self.cfg.rotate_prob)
        if image.shape[:2] != (self.size, self.size):
            image = cv2.resize(image, (self.size, self.size), interpolation=cv2.INTER_LINEAR)
            mask = cv2.resize(mask, (self.size, self.size), interpolation=cv2.INTER_LINEAR)
        mean, std = (TRAIN_MEAN, TRAIN_STD) if self.train else (TEST_MEAN, TEST_STD)
        return to_tensor(image, mean, std), torch.from_numpy(np.ascontiguousarray(mask))[None].float()


# ---------------------------------------------------------------------------------------------------------
# offline default: real photos inpainted by classical methods (shared.data.inpainting)
# ---------------------------------------------------------------------------------------------------------
def offline_splits(cfg: DataConfig, seed: int) -> dict[str, PairDataset]:
    """The offline splits: ``train`` and ``val`` (train photos, train methods), and one test split per method,
    ``test/<method>`` (held-out photos), for every train method and every held-out method."""
    arrays = _offline_arrays(json.dumps(dataclasses.asdict(cfg), sort_keys=True), seed)
    return {name: PairDataset(images, masks, cfg.image_size, train=name == "train", cfg=cfg, seed=seed)
            for name, (images, masks) in arrays.items()}


@functools.lru_cache(maxsize=1)
def _offline_arrays(cfg_json: str, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Images and masks of :func:`offline_splits`, cached so that several trainings on the same data and seed in
    one process (``reproduce.py``) generate them once; nothing writes into them (augmentation makes copies)."""
    from shared.data.inpainting import inpainting_dataset  # scikit-image: imported when data is made

    cfg = DataConfig(**json.loads(cfg_json))

    def make(n: int, methods, photos, split_seed: int) -> tuple[np.ndarray, np.ndarray]:
        d = inpainting_dataset(n, size=cfg.image_size, methods=list(methods), seed=split_seed,
                               photo_names=list(photos), jpeg_quality=tuple(cfg.jpeg_quality),
                               scale=tuple(cfg.crop_scale))
        return d["images"], d["masks"].astype(np.float32)

    splits = {"train": make(cfg.n_train, cfg.train_methods, cfg.train_photos, 1000 * seed + 1),
              "val": make(cfg.n_val, cfg.train_methods, cfg.train_photos, 1000 * seed + 2)}
    for i, method in enumerate((*cfg.train_methods, *cfg.heldout_methods)):
        splits[f"test/{method}"] = make(cfg.n_test_per_method, [method], cfg.test_photos, 1000 * seed + 10 + i)
    return splits


# ---------------------------------------------------------------------------------------------------------
# real datasets in the official layout
# ---------------------------------------------------------------------------------------------------------
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".tif", ".bmp")


class InpaintingFolder(DatasetRoot):
    """An inpainting-localisation dataset in the official DeFI-Net layout (``train.py``: ``--train_root``
    ``<root>/train/``, ``--val_root`` ``<root>/test/``). IID, DEFACTO (inpainting subset), AutoSplice, Korus,
    CocoGlide and TGIF are all read this way once arranged as below; masks are white (255) where inpainted.
    Image and mask are paired by file stem, or (IID, whose names differ) by sorted order when no stem
    matches."""

    name = "inpainting dataset (DeFI-Net layout)"
    layout = ("<data-root>/\n"
              "  train/images/*.png|jpg   tampered images\n"
              "  train/labels/*.png       masks, 255 = inpainted\n"
              "  train/edges/*.png        (optional; edges are recomputed from labels)\n"
              "  test/images/*.png|jpg\n"
              "  test/labels/*.png")
    required = ("train/images", "train/labels", "test/images", "test/labels")

    def pairs(self, split: Literal["train", "test"]) -> list[tuple[Path, Path]]:
        images = sorted(p for p in (self.root / split / "images").iterdir() if p.suffix.lower() in IMAGE_EXTS)
        labels = sorted(p for p in (self.root / split / "labels").iterdir() if p.suffix.lower() in IMAGE_EXTS)
        if not images:
            raise self.missing_file(f"{split}/images/*.png")
        by_stem = {p.stem: p for p in labels}
        if all(p.stem in by_stem for p in images):
            return [(p, by_stem[p.stem]) for p in images]
        if len(images) == len(labels):
            return list(zip(images, labels))
        missing = next(p for p in images if p.stem not in by_stem)
        raise self.missing_file(f"{split}/labels/{missing.stem}.png")

    def load(self, split: Literal["train", "test"], limit: int | None = None
             ) -> tuple[list[np.ndarray], list[np.ndarray], list[str]]:
        """Read images (uint8 RGB) and masks (float 0/1, binarised at 127.5) of a split into memory."""
        images, masks, names = [], [], []
        for image_path, label_path in self.pairs(split)[:limit]:
            image = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
            label = cv2.imread(str(label_path), cv2.IMREAD_GRAYSCALE)
            if image is None or label is None:
                raise self.missing_file(image_path.relative_to(self.root) if image is None
                                        else label_path.relative_to(self.root))
            if label.shape != image.shape[:2]:
                label = cv2.resize(label, image.shape[1::-1], interpolation=cv2.INTER_NEAREST)
            images.append(image[..., ::-1].copy())
            masks.append((label > 127.5).astype(np.float32))
            names.append(image_path.name)
        return images, masks, names


def folder_splits(root: str | Path | None, cfg: DataConfig, seed: int) -> dict[str, PairDataset]:
    """``train`` and ``test`` splits of a real dataset (``val`` is the test split, as in the official code)."""
    folder = InpaintingFolder(root)
    train = folder.load("train")
    test = folder.load("test")
    splits = {"train": PairDataset(*train[:2], cfg.image_size, train=True, cfg=cfg, seed=seed, names=train[2])}
    splits["val"] = splits["test"] = PairDataset(*test[:2], cfg.image_size, train=False, cfg=cfg, seed=seed,
                                                 names=test[2])
    return splits
