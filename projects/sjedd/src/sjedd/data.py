"""Data: the offline synthetic-face default, the paper's list-file datasets, and the official augmentations.

Offline default (the "automated dataset expansion" analogue, ``shared.data.faces_synth``): procedural faces with
exact region masks, manipulated into exactly the classes of the official ``label_map_soff``: identity swap ->
``id``; expression/mouth warp -> ``expr_mouth``; local self/cross blends of eyes, nose, mouth -> ``phys_eyes``,
``phy_nose``, ``phy_mouth``; ``real``. Splits are identity-disjoint; each "video" is a few jittered frames.

* ``train`` / ``test``: the six classes on the ``toon`` face family (identities 0-29 vs 30-39);
* ``cross_manip``: real vs Self-Blended Images (a manipulation never seen in training and absent from the label map);
* ``cross_family``: the six classes on the ``shaded`` family (another generator style), unseen in training.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import torch

from shared.data import DatasetRoot
from shared.data.faces_synth import FaceBatch, make_dataset
from sjedd.labels import CLASSES, LABEL_MAP_SOFF

FAKE_CLASSES = tuple(c for c in CLASSES if c != "real")


@dataclass
class FaceSet:
    """Images (N, 3, H, W) float32 in [0, 1], labels (N, 10), manipulation class per frame, video id per frame."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    videos: np.ndarray

    def __len__(self) -> int:
        return len(self.images)

    @property
    def is_fake(self) -> np.ndarray:
        return self.labels[:, 0].numpy().astype(np.int64)

    @classmethod
    def from_batch(cls, batch: FaceBatch) -> FaceSet:
        classes = [r["manipulation"] for r in batch.records]
        labels = torch.tensor(np.array([LABEL_MAP_SOFF.get(c, (1,) + (0,) * 9) for c in classes]), dtype=torch.float32)
        images = torch.from_numpy(batch.images).permute(0, 3, 1, 2).float() / 255.0
        return cls(images, labels, classes, batch.videos)


@lru_cache(maxsize=1)
def offline_splits(n_train_videos: int, n_test_videos: int, frames: int, size: int, seed: int) -> dict[str, FaceSet]:
    """The offline splits (module docstring); real videos are as many as all fake classes together. The last call's
    splits are cached, so that the runs of one seed in ``reproduce.py`` generate them once (callers never modify
    them in place)."""
    six = ("real",) * len(FAKE_CLASSES) + FAKE_CLASSES
    train = make_dataset(n_train_videos, frames, six, ("toon",), size, seed, identities=range(30))
    test = make_dataset(n_test_videos, frames, six, ("toon",), size, seed + 1, identities=range(30, 40),
                        video_offset=10**6)
    cross_manip = make_dataset(n_test_videos, frames, ("real", "sbi"), ("toon",), size, seed + 2,
                               identities=range(30, 40), video_offset=2 * 10**6)
    cross_family = make_dataset(n_test_videos, frames, six, ("shaded",), size, seed + 3, identities=range(30, 40),
                                video_offset=3 * 10**6)
    return {name: FaceSet.from_batch(b) for name, b in
            (("train", train), ("test", test), ("cross_manip", cross_manip), ("cross_family", cross_family))}


# ---- the paper's data: list files --------------------------------------------------------------------------------
class ListFileDataset(DatasetRoot):
    """FF++ (with the semantic labels) and the cross-dataset test sets as list files of frames or frame folders.

    The official list-file format is not published in the repository we read, so this layout is ours
    (README, Deviations): one line per sample, ``<relative path> <label>``, where the path is an image or a folder
    of frames of one video (``n_frames`` uniformly spaced frames are read, ``np.linspace``) and the label is a
    ``label_map_soff`` class name (``real``, ``id``, ``expr_mouth``, ``phys_eyes``, ``phy_nose``, ``phy_mouth``),
    its 10-digit 0/1 vector, or ``fake`` for test sets that only have a binary label.
    """

    name = "SJEDD list-file dataset (FF++ / CDF / DFDC / ...)"
    layout = """root/
  train.txt  val.txt  test.txt ...     lines: <relative path> <label>
  <relative path>                      an image (.png/.jpg) or a folder of frames of one video
  label: real | id | expr_mouth | phys_eyes | phy_nose | phy_mouth | fake | a 10-digit 0/1 label vector"""
    required = ()

    def __init__(self, root, split: str = "train", n_frames: int = 32, size: int = 224):
        super().__init__(root)
        self.list_file = self.root / f"{split}.txt"
        if not self.list_file.is_file():
            raise self.missing_file(f"{split}.txt")
        self.n_frames, self.size = n_frames, size
        self.entries = []
        for lineno, line in enumerate(self.list_file.read_text().splitlines(), 1):
            if not line.strip():
                continue
            parts = line.rsplit(maxsplit=1)
            if len(parts) != 2:
                raise ValueError(f"{self.list_file}:{lineno}: expected '<relative path> <label>', got {line!r}")
            self.entries.append((parts[0], self.parse_label(parts[1], f"{self.list_file}:{lineno}")))

    @staticmethod
    def parse_label(text: str, where: str = "") -> tuple[int, ...]:
        if text in LABEL_MAP_SOFF:
            return LABEL_MAP_SOFF[text]
        if text == "fake":
            return (1,) + (0,) * 9
        if len(text) == 10 and set(text) <= {"0", "1"}:
            return tuple(int(c) for c in text)
        raise ValueError(f"{where}: unknown label {text!r}; expected a class of {list(CLASSES)}, 'fake' or 10 digits")

    def frames(self, rel: str) -> list[Path]:
        path = self.root / rel
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
            if not files:
                raise self.missing_file(f"{rel}/<frames>.png")
            idx = np.unique(np.linspace(0, len(files) - 1, min(self.n_frames, len(files))).astype(int))
            return [files[i] for i in idx]
        if not path.is_file():
            raise self.missing_file(rel)
        return [path]

    def load(self) -> FaceSet:
        """Every listed frame as one :class:`FaceSet` (frames of a folder share its video id)."""
        images, labels, classes, videos = [], [], [], []
        for v, (rel, label) in enumerate(self.entries):
            for frame in self.frames(rel):
                image = cv2.imread(str(frame), cv2.IMREAD_COLOR)
                if image is None:
                    raise ValueError(f"{frame}: not a readable image")
                image = cv2.resize(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), (self.size, self.size),
                                   interpolation=cv2.INTER_CUBIC)
                images.append(image)
                labels.append(label)
                classes.append("".join(map(str, label)))
                videos.append(v)
        tensor = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255.0
        return FaceSet(tensor, torch.tensor(labels, dtype=torch.float32), classes, np.array(videos))


# ---- the official augmentation set (set_dataset_train.py, --aug --aug_probs 0.3) ---------------------------------
def augment(images: torch.Tensor, p: float, rng: np.random.Generator) -> torch.Tensor:
    """With probability ``p`` per image, one of: block-wise grey patches, YCbCr colour Gaussian noise, Gaussian blur,
    pixelation, or JPEG compression (the official five, with their parameters; patch size and blur kernel scaled from
    the official 256-px crops to the image size). ``images`` (B, 3, H, W) in [0, 1]; returns a new tensor."""
    out = images.clone()
    size = images.shape[-1]
    scale = size / 256
    for i in np.flatnonzero(rng.random(len(images)) < p):
        kind = rng.integers(5)
        x = out[i]
        if kind == 0:  # block-wise grey patches: 16 or 32 patches of 8x8 (per 256 px)
            patch = max(1, round(8 * scale))
            for _ in range(int(rng.choice([16, 32]))):
                r, c = rng.integers(0, size - patch + 1, 2)
                x[:, r:r + patch, c:c + patch] = x[:, r:r + patch, c:c + patch].mean(0, keepdim=True)
        elif kind == 1:  # colour Gaussian noise in YCbCr, variance 0.001 or 0.002
            ycc = _rgb_to_ycbcr(x)
            ycc = ycc + torch.from_numpy(rng.normal(0, np.sqrt(rng.choice([0.001, 0.002])), ycc.shape)).float()
            x = _ycbcr_to_rgb(ycc)
        elif kind == 2:  # Gaussian blur, kernel 7 or 9 (per 256 px)
            k = int(rng.choice([7, 9]) * max(scale, 3 / 7)) | 1
            arr = cv2.GaussianBlur(x.permute(1, 2, 0).numpy(), (k, k), 0)
            x = torch.from_numpy(arr).permute(2, 0, 1)
        elif kind == 3:  # pixelation, factor 2 or 3
            f = int(rng.choice([2, 3]))
            small = torch.nn.functional.interpolate(x[None], scale_factor=1 / f, mode="area")
            x = torch.nn.functional.interpolate(small, size=(size, size), mode="nearest")[0]
        else:  # JPEG, quality 75, 80 or 90
            arr = (x.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            ok, buf = cv2.imencode(".jpg", arr[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(rng.choice([75, 80, 90]))])
            x = torch.from_numpy(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1].copy()).permute(2, 0, 1).float() / 255
        out[i] = x.clamp(0, 1)
    return out


_YCC = torch.tensor([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])


def _rgb_to_ycbcr(x: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,jhw->ihw", _YCC, x) + torch.tensor([0.0, 0.5, 0.5]).view(3, 1, 1)


def _ycbcr_to_rgb(y: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,jhw->ihw", torch.linalg.inv(_YCC), y - torch.tensor([0.0, 0.5, 0.5]).view(3, 1, 1))
