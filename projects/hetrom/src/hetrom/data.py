"""Task samplers: contaminated sinusoid regression and N-way K-shot classification with noisy-label tasks.

Every sampler returns a meta-batch as a dict of tensors with a leading task dimension::

    x_support, y_support, x_query, y_query, kind   (kind: 0 clean, 1 noisy, 2 outlier, 3 easy; int64 (n,))

Few-shot image classes come from a *class source*: the procedural glyph alphabet of
:mod:`shared.data.glyphs` (offline default), or Omniglot / mini-ImageNet read from ``--data-root`` in their
official layouts (:class:`OmniglotRoot`, :class:`MiniImageNetRoot`; nothing is downloaded).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
import torch

from shared.data import DatasetRoot
from shared.data.glyphs import GlyphAlphabet
from shared.data.sinusoid import CLEAN, NOISY, OUTLIER, SinusoidFamily, sample_tasks


def to_tensors(batch: dict[str, np.ndarray], device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    return {key: torch.as_tensor(value, device=device) for key, value in batch.items()}


# ---- sinusoid regression ---------------------------------------------------------------------------------
@dataclass
class SinusoidTasks:
    """Meta-batches of (possibly contaminated) sinusoid tasks from :func:`shared.data.sinusoid.sample_tasks`."""

    family: SinusoidFamily
    n_support: int = 10
    n_query: int = 10

    def sample(self, rng: np.random.Generator, n_tasks: int) -> dict[str, np.ndarray]:
        tasks = sample_tasks(rng, n_tasks, self.n_support, self.n_query, self.family)
        return {k: tasks[k] for k in ("x_support", "y_support", "x_query", "y_query", "f_query", "kind")}


# ---- class sources ---------------------------------------------------------------------------------------
class ClassSource(Protocol):
    """A set of image classes: ``sample(classes, count, rng)`` -> float32 ``(len(classes), count, C, H, W)``."""

    n_classes: int
    channels: int
    image_size: int

    def sample(self, classes: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray: ...


class GlyphClasses:
    """A contiguous range of classes of a :class:`GlyphAlphabet`; every sample is freshly rendered."""

    channels = 1

    def __init__(self, alphabet: GlyphAlphabet, first: int, count: int, image_size: int = 28):
        if first < 0 or first + count > len(alphabet):
            raise ValueError(f"class range [{first}, {first + count}) exceeds the alphabet's {len(alphabet)} classes")
        self.alphabet, self.first, self.n_classes, self.image_size = alphabet, first, count, image_size

    def sample(self, classes: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
        ids = np.repeat(np.asarray(classes) + self.first, count)
        images = self.alphabet.sample(ids, rng, size=self.image_size)["images"]
        return images.reshape(len(classes), count, 1, self.image_size, self.image_size)


class _FileClasses:
    """Classes given as lists of image files, read (and cached) on demand."""

    def __init__(self, files: list[list[Path]], channels: int, image_size: int, invert: bool):
        self.files, self.channels, self.image_size, self.invert = files, channels, image_size, invert
        self.n_classes = len(files)
        self._cache: dict[Path, np.ndarray] = {}

    def _read(self, path: Path) -> np.ndarray:
        if path not in self._cache:
            flag = cv2.IMREAD_GRAYSCALE if self.channels == 1 else cv2.IMREAD_COLOR
            image = cv2.imread(str(path), flag)
            if image is None:
                raise FileNotFoundError(f"cannot read image '{path}' (missing or not an image)")
            image = cv2.resize(image, (self.image_size, self.image_size), interpolation=cv2.INTER_AREA)
            image = image.astype(np.float32) / 255.0
            image = 1.0 - image if self.invert else image
            self._cache[path] = image[None] if self.channels == 1 else image[..., ::-1].transpose(2, 0, 1).copy()
        return self._cache[path]

    def sample(self, classes: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
        out = []
        for c in classes:
            files = self.files[int(c)]
            if len(files) < count:
                raise ValueError(f"class {c} has {len(files)} images, fewer than the {count} a task needs")
            out.append(np.stack([self._read(files[i]) for i in rng.choice(len(files), count, replace=False)]))
        return np.stack(out)


class RotatedClasses:
    """Every class of ``base`` in four rotations (0, 90, 180, 270 degrees), each rotation a class of its own:
    the Omniglot augmentation of Santoro et al. (2016) used by MAML (Finn et al., 2017, Sec. 5.2)."""

    def __init__(self, base: ClassSource):
        self.base, self.channels, self.image_size = base, base.channels, base.image_size
        self.n_classes = 4 * base.n_classes

    def sample(self, classes: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
        classes = np.asarray(classes)
        images = self.base.sample(classes // 4, count, rng)  # (len(classes), count, C, H, W)
        return np.stack([np.rot90(images[i], int(r), axes=(-2, -1)) for i, r in enumerate(classes % 4)])


class OmniglotRoot(DatasetRoot):
    """Omniglot (Lake et al., 2015) in the layout of github.com/brendenlake/omniglot (python/*.zip unpacked).

    Split (Vinyals et al. 2016 / Finn et al. 2017): the 1,623 characters of both folders, sorted and shuffled
    with seed 1; the first 1,200 are meta-training, the next 100 validation, the rest test. Images are
    resized to ``image_size`` and inverted (ink = 1).
    """

    name = "Omniglot"
    layout = """root/
  images_background/<alphabet>/<character>/*.png   (964 characters)
  images_evaluation/<alphabet>/<character>/*.png   (659 characters)"""
    required = ("images_background", "images_evaluation")

    def classes(self, split: str, image_size: int = 28, rotations: bool = False) -> _FileClasses | RotatedClasses:
        """The classes of ``split``; with ``rotations`` each one four times (0/90/180/270 degrees)."""
        chars = sorted(p for folder in ("images_background", "images_evaluation")
                       for p in (self.root / folder).glob("*/*") if p.is_dir())
        if not chars:
            raise self.missing_file("images_background/<alphabet>/<character>/*.png")
        np.random.default_rng(1).shuffle(chars)
        ranges = {"train": slice(0, 1200), "val": slice(1200, 1300), "test": slice(1300, None)}
        if split not in ranges:
            raise ValueError(f"unknown split {split!r}; expected one of {list(ranges)}")
        files = [sorted(c.glob("*.png")) for c in chars[ranges[split]]]
        source = _FileClasses(files, channels=1, image_size=image_size, invert=True)
        return RotatedClasses(source) if rotations else source


class MiniImageNetRoot(DatasetRoot):
    """mini-ImageNet with the split of Ravi & Larochelle (2017): 64 / 16 / 20 classes of 600 images each."""

    name = "mini-ImageNet (Ravi & Larochelle split)"
    layout = """root/
  images/<n0xxxxxxx000yyyyy>.jpg   (60,000 images)
  train.csv   val.csv   test.csv   (header 'filename,label')"""
    required = ("images", "train.csv", "val.csv", "test.csv")

    def classes(self, split: str, image_size: int = 84) -> _FileClasses:
        if split not in ("train", "val", "test"):
            raise ValueError(f"unknown split {split!r}; expected one of ['train', 'val', 'test']")
        by_label: dict[str, list[Path]] = {}
        with open(self.root / f"{split}.csv", newline="") as fh:
            rows = list(csv.reader(fh))
        if not rows or rows[0][:2] != ["filename", "label"]:
            raise self.missing_file(f"{split}.csv (header 'filename,label')")
        for filename, label in rows[1:]:
            by_label.setdefault(label, []).append(self.root / "images" / filename)
        return _FileClasses([by_label[k] for k in sorted(by_label)], channels=3, image_size=image_size, invert=False)


# ---- N-way K-shot tasks ----------------------------------------------------------------------------------
@dataclass
class FewShotTasks:
    """N-way K-shot classification tasks, some of them contaminated.

    * noisy tasks (``noisy_rate``): each support and query label is replaced, with probability
      ``label_noise``, by a uniformly drawn label of the N ways (noise in the task's training samples);
    * outlier tasks (``outlier_rate``): the images are photometrically inverted (a different task family).
    """

    source: ClassSource
    n_way: int = 5
    k_shot: int = 1
    k_query: int = 15
    noisy_rate: float = 0.0
    outlier_rate: float = 0.0
    label_noise: float = 0.5

    def __post_init__(self) -> None:
        if self.source.n_classes < self.n_way:
            raise ValueError(f"{self.n_way}-way tasks need at least {self.n_way} classes, "
                             f"the source has {self.source.n_classes}")
        if self.noisy_rate < 0 or self.outlier_rate < 0 or self.noisy_rate + self.outlier_rate > 1:
            raise ValueError(f"rates must be >= 0 and sum to <= 1, got {self.noisy_rate}, {self.outlier_rate}")

    def sample(self, rng: np.random.Generator, n_tasks: int) -> dict[str, np.ndarray]:
        n, k, q = self.n_way, self.k_shot, self.k_query
        p_clean = 1.0 - self.noisy_rate - self.outlier_rate
        kind = rng.choice([CLEAN, NOISY, OUTLIER], size=n_tasks, p=[p_clean, self.noisy_rate, self.outlier_rate])
        classes = np.stack([rng.choice(self.source.n_classes, n, replace=False) for _ in range(n_tasks)])
        images = np.stack([self.source.sample(c, k + q, rng) for c in classes])  # (T, N, K+Q, C, H, W)
        images[kind == OUTLIER] = 1.0 - images[kind == OUTLIER]
        labels = np.broadcast_to(np.arange(n)[None, :, None], (n_tasks, n, k + q)).copy()
        flip = (rng.random(labels.shape) < self.label_noise) & (kind == NOISY)[:, None, None]
        labels[flip] = rng.integers(0, n, size=int(flip.sum()))
        shape = images.shape[3:]
        return {
            "x_support": images[:, :, :k].reshape(n_tasks, n * k, *shape),
            "y_support": labels[:, :, :k].reshape(n_tasks, n * k),
            "x_query": images[:, :, k:].reshape(n_tasks, n * q, *shape),
            "y_query": labels[:, :, k:].reshape(n_tasks, n * q),
            "kind": kind.astype(np.int64),
        }
