"""Data: the offline chest-CT phantom and a loader for CC-CCII in its official folder layout.

Both give ``(volume, label)`` pairs with ``volume`` a float32 (1, D, H, W) tensor in [0, 1] after HU
windowing and resizing to ``volume_size`` (trilinear; the arithmetic of MONAI's ``ScaleIntensityRange`` and
``Resize``, see :func:`intensity_transform`);
labels follow CC-CCII's classes: 0 = NCP (COVID-19), 1 = CP (common pneumonia), 2 = Normal. The phantom
also gives the true lesion mask of every volume (for heat-map localisation, :mod:`nlran.heatmaps`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from nlran.config import Config
from shared.data import DatasetRoot
from shared.data.ct_phantom import CLASSES, chest_ct_dataset

SPLITS = ("train", "val", "test")


def intensity_transform(hu_window: tuple[float, float], volume_size: tuple[int, int, int]):
    """HU window -> [0, 1] (clipped), then resize to ``volume_size``: a function of a channel-first
    (1, D, H, W) array returning a float32 (1, D, H, W) tensor.

    The same arithmetic as MONAI's ``ScaleIntensityRange(a_min=lo, a_max=hi, b_min=0, b_max=1, clip=True)``
    followed by ``Resize(volume_size, mode="trilinear")`` (``torch.nn.functional.interpolate``,
    ``align_corners=False``; a volume already at ``volume_size`` is returned as is), written with torch so
    that the phantom pipeline does not import MONAI (tested against MONAI)."""
    lo, hi = hu_window
    if hi <= lo:
        raise ValueError(f"hu_window needs lo < hi, got {hu_window}")
    size = tuple(int(n) for n in volume_size)

    def transform(volume) -> torch.Tensor:
        x = torch.as_tensor(np.asarray(volume), dtype=torch.float32)
        if x.ndim != 4:
            raise ValueError(f"expected a channel-first (C, D, H, W) volume, got shape {tuple(x.shape)}")
        x = ((x - lo) / (hi - lo)).clamp(0.0, 1.0)
        if tuple(x.shape[1:]) != size:
            x = F.interpolate(x[None], size=size, mode="trilinear", align_corners=False)[0]
        return x

    return transform


def split_indices(groups: np.ndarray, fractions: tuple[float, float, float], seed: int) -> dict[str, np.ndarray]:
    """Split items into train/val/test by ``groups`` (patient ids), so no patient is in two splits.

    Groups are shuffled with ``seed`` and assigned greedily in order until each split holds its fraction
    of the items (the paper: a random 3263 / 408 / 408 = 80 / 10 / 10 split of 4,079 scans).
    """
    if len(fractions) != 3 or abs(sum(fractions) - 1.0) > 1e-6 or min(fractions) < 0:
        raise ValueError(f"split fractions must be three non-negative numbers summing to 1, got {fractions}")
    groups = np.asarray(groups)
    unique = np.random.default_rng(seed).permutation(np.unique(groups))
    counts = {g: int(np.sum(groups == g)) for g in unique}
    bounds = np.cumsum(fractions) * len(groups)
    assign, seen = {}, 0
    for g in unique:
        assign[g] = int(np.searchsorted(bounds[:2], seen, side="right"))
        seen += counts[g]
    which = np.array([assign[g] for g in groups])
    return {name: np.flatnonzero(which == i) for i, name in enumerate(SPLITS)}


@dataclass
class PhantomSplit(Dataset):
    """One split of the phantom: windowed volumes (N, 1, D, H, W), labels (N,), lesion and lung masks
    (N, D, H, W) (lesions lie inside the lungs)."""

    volumes: torch.Tensor
    labels: torch.Tensor
    lesion_masks: torch.Tensor
    lung_masks: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.volumes[i], self.labels[i]


def phantom_splits(cfg: Config) -> dict[str, PhantomSplit]:
    """Generate ``cfg.n_volumes`` phantoms at ``cfg.volume_size`` (seeded by ``cfg.seed``) and split them
    by ``cfg.split`` fractions, or ``sum(cfg.split_sizes)`` phantoms split into exactly those counts.

    The result is cached per process (read-only tensors), so reproduce.py generates each dataset once.
    """
    sizes = tuple(cfg.split_sizes) if cfg.split_sizes is not None else None
    if sizes is not None and (len(sizes) != 3 or min(sizes) < 1):
        raise ValueError(f"split_sizes must be three positive train/val/test counts, got {sizes}")
    n = sum(sizes) if sizes is not None else cfg.n_volumes
    split = tuple(k / n for k in sizes) if sizes is not None else tuple(cfg.split)
    return _phantom_splits(n, tuple(cfg.volume_size), cfg.seed, tuple(cfg.hu_window), split)


@lru_cache(maxsize=2)
def _phantom_splits(n: int, size: tuple[int, int, int], seed: int, hu_window: tuple[float, float],
                    split: tuple[float, float, float]) -> dict[str, PhantomSplit]:
    data = chest_ct_dataset(n, size, seed=seed)
    window = intensity_transform(hu_window, size)
    volumes = torch.stack([torch.as_tensor(np.asarray(window(v[None]))) for v in data["volumes"]]).float()
    idx = split_indices(np.arange(n), split, seed)  # one phantom = one patient
    return {name: PhantomSplit(volumes[i], torch.as_tensor(data["labels"][i]), torch.as_tensor(data["lesion_masks"][i]),
                               torch.as_tensor(data["lung_masks"][i])) for name, i in idx.items()}


def clear_phantom_cache() -> None:
    """Forget the cached phantom datasets (frees their memory)."""
    _phantom_splits.cache_clear()


def natural_key(path: Path) -> tuple:
    """Sort key for slice file names: runs of digits compare as numbers (``2.png < 10.png``), the rest as
    lower-case text. CC-CCII names many scans' slices ``0.png, 1.png, ..., 10.png`` without zero-padding,
    where a plain sort would interleave 10 between 1 and 2."""
    parts = re.split(r"(\d+)", path.name.lower())
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts if p)


class CCCCIIRoot(DatasetRoot):
    """CC-CCII (China Consortium of Chest CT Image Investigation, Zhang et al., Cell 2020), or its cleaned
    release Clean-CC-CCII, as distributed: one folder per class, per patient, per scan, holding the scan's
    axial slices as image files (named so that sorting gives the slice order)."""

    name = "CC-CCII"
    layout = """\
<data-root>/
  NCP/                      COVID-19 (novel coronavirus pneumonia)
    <patient_id>/
      <scan_id>/
        0.png 1.png ... 10.png  axial slices (png/jpg, 8-bit, already lung-windowed); natural sort of the
                                names (1 < 2 < 10; 0001 < 0002 as well) = slice order
  CP/                       common pneumonia (same layout)
  Normal/                   normal (same layout)
"""
    required = ("NCP", "CP", "Normal")
    folders = ("NCP", "CP", "Normal")
    extensions = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

    def scans(self) -> list[tuple[Path, int, str]]:
        """Every scan folder as ``(path, label, patient key)``; an empty class is an error."""
        out = []
        for label, folder in enumerate(self.folders):
            found = [(scan, label, f"{folder}/{scan.parent.name}")
                     for scan in sorted((self.root / folder).glob("*/*")) if scan.is_dir()]
            if not found:
                raise self.missing_file(f"{folder}/<patient_id>/<scan_id>/")
            out += found
        return out

    def read_scan(self, scan: Path) -> np.ndarray:
        """The scan's slices stacked to a float32 (D, H, W) array of 0..255 grey values."""
        files = sorted((p for p in scan.iterdir() if p.suffix.lower() in self.extensions), key=natural_key)
        if not files:
            raise self.missing_file(scan.relative_to(self.root) / "<slice>.png")
        slices = [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in files]
        bad = [str(p) for p, s in zip(files, slices) if s is None]
        if bad:
            raise ValueError(f"CC-CCII: cannot read slice image(s) {bad[:3]} (corrupt or not an image)")
        shape = slices[0].shape
        slices = [s if s.shape == shape else cv2.resize(s, shape[::-1], interpolation=cv2.INTER_AREA) for s in slices]
        return np.stack(slices).astype(np.float32)


class CCCCIIDataset(Dataset):
    """A split of CC-CCII, read lazily; slices are 8-bit lung-windowed images, so the intensity window is
    the grey range [0, 255] (a HU window applies to raw DICOM, which CC-CCII does not distribute)."""

    def __init__(self, root: CCCCIIRoot, scans: list[tuple[Path, int, str]], volume_size: tuple[int, int, int]):
        self.root, self.scans = root, scans
        self.transform = intensity_transform((0.0, 255.0), volume_size)
        self.labels = torch.tensor([label for _, label, _ in scans], dtype=torch.int64)

    def __len__(self) -> int:
        return len(self.scans)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        scan, label, _ = self.scans[i]
        volume = torch.as_tensor(np.asarray(self.transform(self.root.read_scan(scan)[None]))).float()
        return volume, self.labels[i]


def ccccii_splits(cfg: Config) -> dict[str, CCCCIIDataset]:
    """CC-CCII from ``cfg.data_root``, split 80/10/10 by patient with ``cfg.seed``."""
    root = CCCCIIRoot(cfg.data_root)
    scans = root.scans()
    idx = split_indices(np.array([patient for _, _, patient in scans]), cfg.split, cfg.seed)
    return {name: CCCCIIDataset(root, [scans[j] for j in i], cfg.volume_size) for name, i in idx.items()}


def build_splits(cfg: Config) -> dict[str, Dataset]:
    """The train/val/test datasets named by ``cfg.dataset``."""
    if cfg.dataset == "phantom":
        return phantom_splits(cfg)
    return ccccii_splits(cfg)


__all__ = ["CLASSES", "SPLITS", "CCCCIIDataset", "CCCCIIRoot", "PhantomSplit", "build_splits", "ccccii_splits",
           "clear_phantom_cache", "intensity_transform", "natural_key", "phantom_splits", "split_indices"]
