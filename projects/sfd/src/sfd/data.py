"""Data: the embedded offline defaults (2-D ring, scikit-learn digits) and the paper's real datasets.

SFD trains from noise only; real images are needed only as the FID reference set.
* ``toy2d``: 8 Gaussians on a ring (radius √2, std 0.1, per-coordinate std ≈ 1) from ``shared.data.toy2d``.
* ``digits``: the 1,797 scikit-learn 8×8 digits, scaled to [−1, 1], shape (N, 1, 8, 8).
* :class:`Cifar10Root` / :class:`ImageNet64Root`: the official archives, for FID reference statistics.
"""

from __future__ import annotations

import pickle

import numpy as np
import torch

from shared.data import DatasetRoot, digits
from shared.data.toy2d import ring_gaussians

DATASETS = ("toy2d", "digits")


def toy_points(n: int, seed: int = 0) -> torch.Tensor:
    """(n, 2) float32 points of the 8-Gaussian ring."""
    return torch.from_numpy(ring_gaussians(n, seed=seed)[0])


def digit_images() -> tuple[torch.Tensor, torch.Tensor]:
    """All 1,797 digits as (N, 1, 8, 8) float32 in [−1, 1], and their labels."""
    images, labels = digits()
    return torch.from_numpy(images * 2 - 1)[:, None], torch.from_numpy(labels)


def training_data(dataset: str, seed: int = 0, n_toy: int = 100_000) -> torch.Tensor:
    """The teacher's training set for an offline dataset."""
    if dataset == "toy2d":
        return toy_points(n_toy, seed=10_000 + seed)
    if dataset == "digits":
        return digit_images()[0]
    raise ValueError(f"unknown dataset {dataset!r}; expected one of {DATASETS}")


def data_shape(dataset: str) -> tuple[int, ...]:
    return {"toy2d": (2,), "digits": (1, 8, 8)}[dataset]


class Cifar10Root(DatasetRoot):
    """CIFAR-10, python version (https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz, extracted)."""

    name = "CIFAR-10 (python version)"
    layout = ("root/\n  cifar-10-batches-py/\n    data_batch_1 ... data_batch_5\n    test_batch\n"
              "    batches.meta")
    required = tuple(f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6))

    def images(self, split: str = "train") -> np.ndarray:
        """uint8 (N, 32, 32, 3) images (the 50,000 training images are EDM's FID reference set)."""
        names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
        out = []
        for name in names:
            path = self.root / "cifar-10-batches-py" / name
            try:
                with open(path, "rb") as fh:  # CIFAR-10's official "python version" is pickled (torchvision
                    batch = pickle.load(fh, encoding="bytes")  # reads it the same way); only the user's own root
                out.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            except (OSError, KeyError, pickle.UnpicklingError, ValueError) as err:
                raise self.missing_file(path.relative_to(self.root)) from err
        return np.concatenate(out).transpose(0, 2, 3, 1)


class ImageNet64Root(DatasetRoot):
    """Downsampled ImageNet 64×64 (image-net.org "Imagenet64_train_npz", Chrabaszcz et al. 2017)."""

    name = "ImageNet 64x64 (npz batches)"
    layout = "root/\n  Imagenet64_train_npz/\n    train_data_batch_1.npz ... train_data_batch_10.npz"
    required = ("Imagenet64_train_npz/train_data_batch_*.npz",)

    def images(self, max_images: int | None = None) -> np.ndarray:
        """uint8 (N, 64, 64, 3) images from the npz batches (key ``data``, rows of 3·64·64 channel-first)."""
        out, count = [], 0
        for path in sorted((self.root / "Imagenet64_train_npz").glob("train_data_batch_*.npz")):
            try:
                data = np.load(path)["data"]
            except (OSError, KeyError, ValueError) as err:
                raise self.missing_file(path.relative_to(self.root)) from err
            out.append(data.reshape(-1, 3, 64, 64).transpose(0, 2, 3, 1))
            count += len(data)
            if max_images is not None and count >= max_images:
                break
        return np.concatenate(out)[:max_images]
