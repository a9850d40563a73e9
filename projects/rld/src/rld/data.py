"""Data: the offline digits default with controlled teacher mistakes, and the paper's CIFAR-100 / ImageNet.

Offline default (no download): scikit-learn's 1,797 real 8x8 handwritten digits (``shared.data.digits``),
split 50/50 stratified per seed into train and test. The teacher and the student may use different parts
of the train split (``teacher_fraction`` from the front of a seeded stratified order, ``student_fraction``
from the back; they are disjoint when the fractions sum to at most 1).

Real data goes through torchvision's dataset classes with ``download=False``; a missing or malformed root
raises :class:`FileNotFoundError` naming the path and the expected layout (:data:`CIFAR100_LAYOUT`,
:data:`IMAGENET_LAYOUT`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from shared.data import digits, require_root

CIFAR100_MEAN = (0.5071, 0.4867, 0.4408)
CIFAR100_STD = (0.2675, 0.2565, 0.2761)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

CIFAR100_LAYOUT = """\
<data-root>/
  cifar-100-python/        (the official python version, cifar-100-python.tar.gz unpacked)
    train
    test
    meta"""

IMAGENET_LAYOUT = """\
<data-root>/
  train/<wnid>/*.JPEG      (1000 class folders, e.g. n01440764/)
  val/<wnid>/*.JPEG        (the 50,000 validation images sorted into the same 1000 class folders)"""


# ---------------------------------------------------------------------------------------------------
# offline default: digits
# ---------------------------------------------------------------------------------------------------
@dataclass
class DigitsSplits:
    """Tensors of the offline task: images (N, 1, 8, 8) float32 in [0, 1], labels (N,) int64."""

    teacher_x: torch.Tensor
    teacher_y: torch.Tensor
    student_x: torch.Tensor
    student_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor


def _stratified_order(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A permutation in which every prefix is (nearly) class-balanced: classes interleaved round-robin."""
    per_class = [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]
    rank = np.empty(len(labels))
    for members in per_class:
        rank[members] = (np.arange(len(members)) + rng.random()) / len(members)
    return np.argsort(rank, kind="stable")


def digits_splits(seed: int, teacher_fraction: float = 1.0, student_fraction: float = 1.0,
                  test_fraction: float = 0.5) -> DigitsSplits:
    """Split the digits into teacher-train / student-train / test for one seed (stratified).

    Args:
        seed: drives the train/test split and the teacher/student parts.
        teacher_fraction: share of the train split the teacher is trained on (from the front).
        student_fraction: share of the train split the student is trained on (from the back).
        test_fraction: share of all digits held out for testing.
    """
    for name, value in (("teacher_fraction", teacher_fraction), ("student_fraction", student_fraction),
                        ("test_fraction", test_fraction)):
        if not 0.0 < value <= 1.0:
            raise ValueError(f"{name} must be in (0, 1], got {value}")
    images, labels = digits()
    rng = np.random.default_rng(seed)
    order = _stratified_order(labels, rng)
    n_test = int(round(test_fraction * len(labels)))
    test, train = order[:n_test], order[n_test:]
    train = train[_stratified_order(labels[train], rng)]
    n_teacher = max(int(round(teacher_fraction * len(train))), 10)
    n_student = max(int(round(student_fraction * len(train))), 10)
    teacher_idx, student_idx = train[:n_teacher], train[len(train) - n_student:]

    def pick(idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(images[idx]).unsqueeze(1), torch.from_numpy(labels[idx])

    return DigitsSplits(*pick(teacher_idx), *pick(student_idx), *pick(test))


def inject_teacher_mistakes(teacher_logits: torch.Tensor, target: torch.Tensor, rate: float,
                            generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Controlled, correlated teacher mistakes (our offline protocol; see the spec's CPU plan).

    On a fraction ``rate`` of all samples (drawn among those the teacher gets right) swap the teacher's
    ground-truth logit with its runner-up logit, so the teacher confidently predicts the most confusable
    wrong class while every other class correlation stays intact (the paper's "lion vs tiger" case).

    Returns:
        the new logits (a copy) and a boolean mask of the corrupted samples.
    """
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"teacher error rate must be in [0, 1], got {rate}")
    logits = teacher_logits.clone()
    corrupted = torch.zeros(len(target), dtype=torch.bool)
    correct = torch.nonzero(logits.argmax(dim=1) == target).flatten()
    n = min(int(round(rate * len(target))), len(correct))
    if n == 0:
        return logits, corrupted
    chosen = correct[torch.randperm(len(correct), generator=generator)[:n]]
    rows = logits[chosen]
    gt = target[chosen].view(-1, 1)
    runner_up = rows.scatter(1, gt, float("-inf")).argmax(dim=1, keepdim=True)
    gt_value, runner_value = rows.gather(1, gt), rows.gather(1, runner_up)
    logits[chosen] = rows.scatter(1, gt, runner_value).scatter(1, runner_up, gt_value)
    corrupted[chosen] = True
    return logits, corrupted


class IndexedDataset(Dataset):
    """Wrap a dataset of ``(x, y)`` so that it yields ``(x, y, index)`` (to look up cached teacher logits)."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        x, y = self.dataset[index]
        return x, y, index


# ---------------------------------------------------------------------------------------------------
# real data: CIFAR-100 and ImageNet
# ---------------------------------------------------------------------------------------------------
def require_real_root(dataset: str, root: str | Path | None) -> Path:
    """Check ``root`` against the official layout of ``dataset`` (``cifar100`` or ``imagenet``); the root path.

    Raises ``FileNotFoundError`` naming the path and the expected layout. Cheap (no file is read).
    """
    if dataset == "cifar100":
        return require_root(root, ("cifar-100-python/train", "cifar-100-python/test", "cifar-100-python/meta"),
                            dataset="CIFAR-100", layout=CIFAR100_LAYOUT)
    if dataset == "imagenet":
        return require_root(root, ("train/*/*", "val/*/*"), dataset="ImageNet", layout=IMAGENET_LAYOUT)
    raise ValueError(f"dataset {dataset!r} has no data root (expected cifar100 or imagenet)")


def cifar100_datasets(root: str | Path | None) -> tuple[Dataset, Dataset]:
    """CIFAR-100 train / test through ``torchvision.datasets.CIFAR100(download=False)``.

    Train augmentation (official ``mdistiller/dataset/cifar100.py``): RandomCrop(32, padding=4),
    RandomHorizontalFlip, ToTensor, Normalize(CIFAR-100 mean/std). Test: ToTensor, Normalize.
    """
    from torchvision import datasets, transforms

    path = require_real_root("cifar100", root)
    normalize = transforms.Normalize(CIFAR100_MEAN, CIFAR100_STD)
    train_tf = transforms.Compose([transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(),
                                   transforms.ToTensor(), normalize])
    test_tf = transforms.Compose([transforms.ToTensor(), normalize])
    try:
        train = datasets.CIFAR100(str(path), train=True, transform=train_tf, download=False)
        test = datasets.CIFAR100(str(path), train=False, transform=test_tf, download=False)
    except (RuntimeError, OSError, ValueError, KeyError) as err:
        raise FileNotFoundError(f"CIFAR-100: data root '{path}' is malformed ({err}).\n"
                                f"Expected layout of CIFAR-100:\n{CIFAR100_LAYOUT}") from err
    return train, test


def imagenet_datasets(root: str | Path | None) -> tuple[Dataset, Dataset]:
    """ImageNet-1k train / val as ``torchvision.datasets.ImageFolder`` (the layout mdistiller reads).

    Train: RandomResizedCrop(224), RandomHorizontalFlip; val: Resize(256), CenterCrop(224); both normalised
    with the ImageNet mean/std.
    """
    from torchvision import datasets, transforms

    path = require_real_root("imagenet", root)
    normalize = transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)
    train_tf = transforms.Compose([transforms.RandomResizedCrop(224), transforms.RandomHorizontalFlip(),
                                   transforms.ToTensor(), normalize])
    val_tf = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(), normalize])
    try:
        return (datasets.ImageFolder(str(path / "train"), transform=train_tf),
                datasets.ImageFolder(str(path / "val"), transform=val_tf))
    except (FileNotFoundError, OSError) as err:
        raise FileNotFoundError(f"ImageNet: data root '{path}' is malformed ({err}).\n"
                                f"Expected layout of ImageNet:\n{IMAGENET_LAYOUT}") from err
