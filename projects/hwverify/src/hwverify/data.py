"""Handwriting samples, writer-disjoint splits and balanced verification pairs.

Sources:

* ``synthetic`` -- :func:`shared.data.handwriting.handwriting_and`, the offline multi-writer "and" set;
* ``cedar`` -- CEDAR AND (or CEDAR Letter) images under ``--data-root`` (:class:`CedarRoot`), writer id from
  the file name ``XXXXy_numZ.png`` (writer XXXX, page y, sample Z).

Pairs follow SSL-HV: every 2-combination of a writer's samples is a same-writer pair (label 1), and for each
of them one different-writer pair (label 0) joins one of the writer's samples with a random sample of
another writer, so the classes are balanced 1:1. Splits are by writer, so no test writer is seen in training.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from hwverify.config import DataConfig
from shared.data import DatasetRoot
from shared.data.handwriting import handwriting_and

SPLITS = ("train", "val", "test")


@dataclass
class HandwritingData:
    """Grey scans with writer ids and splits.

    Attributes:
        images: the ResNet's view, float32 (N, S, S) in [0, 1] (white paper = 1, ink dark), each resized from
            its original to S x S (SSL-HV: 64).
        originals: the scans at their original resolution, uint8 (H, W) each (white paper = 255), indexable by
            sample; the VLM and the chain-of-thought protocol read these, never the S x S view.
        writer_ids: int64 (N,), a writer index per sample.
        names: file-like names (``0001a_num1``).
        splits: ``{"train"|"val"|"test": sample indices}``; their writers are disjoint.
        styles: synthetic only: style key -> (n_writers,) array, indexed by writer id (for explanations).
        paths: CEDAR only: the image files (the official protocol sends their bytes).
    """

    images: np.ndarray
    originals: Sequence[np.ndarray]
    writer_ids: np.ndarray
    names: list[str]
    splits: dict[str, np.ndarray]
    styles: dict[str, np.ndarray] = field(default_factory=dict)
    paths: list[Path] | None = None


class ScanFiles(Sequence):
    """Original scans read from disk on access (grey uint8), so CEDAR Letter pages need not fit in memory."""

    def __init__(self, paths: list[Path]):
        self.paths = list(paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, k: int) -> np.ndarray:
        return read_grey(self.paths[k])


def read_grey(path: Path) -> np.ndarray:
    """A grey uint8 scan; a clear error for an unreadable file."""
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise ValueError(f"cannot read image '{path}' (corrupt or not an image)")
    return image


def resized_view(original: np.ndarray, size: int) -> np.ndarray:
    """The ResNet's S x S float view (white = 1) of a uint8 scan."""
    return cv2.resize(original, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


def model_input(images: np.ndarray) -> np.ndarray:
    """The ResNet input of SSL-HV: ``ToTensor`` then inverted (1 - x), so ink is bright on black.

    Args:
        images: float (..., S, S) scans in [0, 1] (white paper = 1).
    Returns:
        float32 (..., 1, S, S).
    """
    images = np.asarray(images, np.float32)
    if images.ndim < 2 or images.shape[-1] != images.shape[-2]:
        raise ValueError(f"expected square grey images (..., S, S), got shape {images.shape}")
    return (1.0 - images)[..., None, :, :]


# ---- splits and pairs --------------------------------------------------------------------------------------
def writer_disjoint_split(writers: np.ndarray, val_fraction: float, test_fraction: float,
                          rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Shuffle the distinct ``writers`` and cut them into train / val / test writer sets (each non-empty)."""
    writers = rng.permutation(np.unique(writers))
    n = len(writers)
    n_test, n_val = max(1, round(n * test_fraction)), max(1, round(n * val_fraction))
    if n_test + n_val >= n:
        raise ValueError(f"{n} writers are too few for val_fraction={val_fraction}, test_fraction={test_fraction}")
    return {"test": np.sort(writers[:n_test]), "val": np.sort(writers[n_test:n_test + n_val]),
            "train": np.sort(writers[n_test + n_val:])}


def subsample_writers(writers: np.ndarray, percent: float, rng: np.random.Generator) -> np.ndarray:
    """Keep ``percent`` (0, 1] of the training writers (SSL-HV ``train_sample_percent``), at least two."""
    if not 0 < percent <= 1:
        raise ValueError(f"train_sample_percent must be in (0, 1], got {percent}")
    k = max(2, round(len(writers) * percent))
    return np.sort(rng.choice(writers, size=min(k, len(writers)), replace=False))


def make_pairs(writer_ids: np.ndarray, indices: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Balanced verification pairs among the samples ``indices`` (SSL-HV pair construction).

    Every 2-combination (i < j) of one writer's samples is a positive pair; for each positive (i, j) one
    negative pair (i, k) takes k uniformly among the samples of the other writers.

    Returns:
        int64 (P, 3): columns sample i, sample j, label (1 = same writer); positives first, then negatives.
    """
    indices = np.asarray(indices)
    owners = writer_ids[indices]
    if np.unique(owners).size < 2:
        raise ValueError("make_pairs needs samples of at least two writers")
    positives = []
    for w in np.unique(owners):
        own = indices[owners == w]
        a, b = np.triu_indices(len(own), k=1)
        positives.append(np.stack([own[a], own[b]], axis=1))
    pos = np.concatenate(positives) if positives else np.zeros((0, 2), np.int64)
    if len(pos) == 0:
        raise ValueError("no writer has two samples, so there are no same-writer pairs")
    # Negative partner: a uniform draw among the samples whose writer differs from the anchor's.
    order = np.argsort(owners, kind="stable")
    sorted_idx, sorted_own = indices[order], owners[order]
    anchor_owner = writer_ids[pos[:, 0]]
    lo = np.searchsorted(sorted_own, anchor_owner, side="left")
    hi = np.searchsorted(sorted_own, anchor_owner, side="right")
    n_other = len(indices) - (hi - lo)
    r = (rng.random(len(pos)) * n_other).astype(np.int64)
    r = np.where(r >= lo, r + (hi - lo), r)  # skip the anchor writer's block
    neg = np.stack([pos[:, 0], sorted_idx[r]], axis=1)
    return np.concatenate([
        np.concatenate([pos, np.ones((len(pos), 1), np.int64)], axis=1),
        np.concatenate([neg, np.zeros((len(neg), 1), np.int64)], axis=1),
    ]).astype(np.int64)


def writer_batches(writer_ids: np.ndarray, indices: np.ndarray, batch_writers: int,
                   rng: np.random.Generator):
    """One training epoch as writer-grouped batches: yields ``(batch_samples, pairs)``.

    Writers are shuffled and taken ``batch_writers`` at a time; every sample of those writers is embedded once
    and :func:`make_pairs` builds the batch's balanced pairs among them (local positions into
    ``batch_samples``). Over an epoch every same-writer 2-combination appears exactly once, with as many random
    different-writer pairs, as in SSL-HV; grouping by writer only makes each image's forward pass serve all
    its pairs.
    """
    indices = np.asarray(indices)
    if batch_writers < 2:
        raise ValueError(f"batch_writers must be at least 2 (a batch needs negatives), got {batch_writers}")
    writers = rng.permutation(np.unique(writer_ids[indices]))
    # len // batch_writers groups of batch_writers .. 2 * batch_writers - 1 writers: none is left alone.
    for chosen in np.array_split(writers, max(1, len(writers) // batch_writers)):
        samples = indices[np.isin(writer_ids[indices], chosen)]
        yield samples, make_pairs(writer_ids[samples], np.arange(len(samples)), rng)


# ---- sources -----------------------------------------------------------------------------------------------
def load_synthetic(cfg: DataConfig, seed: int) -> HandwritingData:
    """The offline default: synthetic writers of "and", rendered at ``original_size`` (the originals) and
    resized to ``image_size`` for the ResNet, as CEDAR scans are; split by writer."""
    hw = handwriting_and(cfg.n_writers, cfg.samples_per_writer, size=cfg.original_size, seed=seed,
                         jitter=cfg.jitter)
    originals = np.rint(hw.images * 255).astype(np.uint8)
    images = np.stack([resized_view(o, cfg.image_size) for o in originals]) if cfg.original_size != cfg.image_size \
        else originals.astype(np.float32) / 255.0
    rng = np.random.default_rng(seed + 1)
    writer_sets = writer_disjoint_split(hw.writer_ids, cfg.val_fraction, cfg.test_fraction, rng)
    writer_sets["train"] = subsample_writers(writer_sets["train"], cfg.train_sample_percent, rng)
    splits = {k: np.flatnonzero(np.isin(hw.writer_ids, writer_sets[k])) for k in SPLITS}
    return HandwritingData(images, originals, hw.writer_ids, hw.names, splits, hw.styles)


NAME_PATTERN = re.compile(r"^(?P<writer>\d{3,4})(?P<page>[a-z])(?:_num(?P<sample>\d+))?$", re.IGNORECASE)
"""CEDAR names: ``0001a_num3`` (AND: writer, page, sample) or ``0001a`` (Letter: writer, copy)."""


class CedarRoot(DatasetRoot):
    """CEDAR AND (word crops of "and") or CEDAR Letter (full pages), as used by SSL-HV / VLM-HV."""

    name = "CEDAR AND / CEDAR Letter"
    layout = """root/                                    (or root/supervised/, SSL-HV's layout)
  train/  0001a_num1.png  0001a_num2.png ... 0001b_num1.png ...   (training writers)
  test/   0002a_num1.png ...                                     (test writers, disjoint from train/)
Files may sit in per-writer subfolders (SSL-HV: supervised/train/<writer>/0001a_num1.png ...); the writer is
read from the file name. Or a single folder (subfolders allowed) of such images, split by writer with --seed:
root/
  0001a_num1.png  0001a_num2.png  0001b_num1.png  ...  XXXXy_numZ.png  (AND: writer XXXX, page y, sample Z)
  0001a.png  0001b.png  0001c.png ...                                    (Letter: writer XXXX, copy y)
Images are .png/.jpg/.tif, grey or colour, dark ink on light paper."""
    required = ()
    extensions = (".png", ".jpg", ".jpeg", ".tif", ".tiff")

    def files(self, folder: Path) -> list[Path]:
        """Every image named like ``XXXXy_numZ`` under ``folder``, per-writer subfolders included."""
        return sorted((p for p in folder.rglob("*") if p.suffix.lower() in self.extensions and p.is_file()
                       and NAME_PATTERN.match(p.stem)), key=lambda p: (p.stem, str(p)))

    def base(self) -> Path:
        """The folder holding train/ and test/: the root, or its ``supervised/`` subfolder (SSL-HV)."""
        nested = self.root / "supervised"
        if not ((self.root / "train").is_dir() and (self.root / "test").is_dir()) and \
                (nested / "train").is_dir() and (nested / "test").is_dir():
            return nested
        return self.root

    def groups(self) -> dict[str, list[Path]]:
        """The image files, ``{"train": [...], "test": [...]}`` or ``{"all": [...]}``; a clear error when there are
        none or when two files share a sample name."""
        base = self.base()
        has_split = (base / "train").is_dir() and (base / "test").is_dir()
        groups = {"train": self.files(base / "train"), "test": self.files(base / "test")} if has_split \
            else {"all": self.files(base)}
        stems = [p.stem for files in groups.values() for p in files]
        if len(set(stems)) != len(stems):
            dup = sorted({s for s in stems if stems.count(s) > 1})[:3]
            raise ValueError(f"{self.name}: sample names {dup} occur twice under '{self.root}'")
        if not any(groups.values()):
            raise FileNotFoundError(f"{self.name}: no image named like XXXXy_numZ.png under '{self.root}'.\n"
                                    f"Expected layout of {self.name}:\n{self.layout}")
        return groups

    def load(self, cfg: DataConfig, seed: int) -> HandwritingData:
        """Read every sample: the original grey scans (on access) and their ``cfg.image_size`` view."""
        groups = self.groups()
        has_split = "train" in groups
        paths = [p for files in groups.values() for p in files]
        origin = np.array([g for g, files in groups.items() for _ in files])
        writer_names = [NAME_PATTERN.match(p.stem)["writer"] for p in paths]
        writers = {w: i for i, w in enumerate(sorted(set(writer_names)))}
        writer_ids = np.array([writers[w] for w in writer_names], np.int64)
        images = np.stack([self.read(p, cfg.image_size) for p in paths])
        rng = np.random.default_rng(seed + 1)
        if has_split:
            train_writers = np.unique(writer_ids[origin == "train"])
            test_writers = np.unique(writer_ids[origin == "test"])
            if np.intersect1d(train_writers, test_writers).size:
                raise ValueError(f"{self.name}: train/ and test/ under '{self.root}' share writers; "
                                 "they must be writer-disjoint")
            n_val = max(1, round(len(train_writers) * cfg.val_fraction))
            shuffled = rng.permutation(train_writers)
            writer_sets = {"val": np.sort(shuffled[:n_val]), "train": np.sort(shuffled[n_val:]), "test": test_writers}
        else:
            writer_sets = writer_disjoint_split(writer_ids, cfg.val_fraction, cfg.test_fraction, rng)
        writer_sets["train"] = subsample_writers(writer_sets["train"], cfg.train_sample_percent, rng)
        splits = {k: np.flatnonzero(np.isin(writer_ids, writer_sets[k])) for k in SPLITS}
        return HandwritingData(images, ScanFiles(paths), writer_ids, [p.stem for p in paths], splits, paths=paths)

    def read(self, path: Path, size: int) -> np.ndarray:
        try:
            return resized_view(read_grey(path), size)
        except ValueError as err:
            raise ValueError(f"{self.name}: {err}") from err


def check_data(cfg: DataConfig, data_root: str | None) -> None:
    """Validate the configured source before a run starts (CEDAR: the root and its image files)."""
    if cfg.source == "cedar":
        CedarRoot(data_root).groups()
    elif cfg.source != "synthetic":
        raise ValueError(f"data.source must be 'synthetic' or 'cedar', got {cfg.source!r}")


def load_data(cfg: DataConfig, data_root: str | None, seed: int) -> HandwritingData:
    """The configured source; ``cedar`` without a valid ``data_root`` raises FileNotFoundError (no fallback)."""
    if cfg.source == "synthetic":
        return load_synthetic(cfg, seed)
    return CedarRoot(data_root).load(cfg, seed)
