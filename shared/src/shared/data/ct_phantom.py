"""Procedural 3-D chest CT phantoms with lesion masks (COVID-19 / common pneumonia / normal).

A stand-in for CC-CCII-style chest CT (Zhang et al., Cell 2020) that runs offline and ships the ground
truth a real dataset lacks: the voxel mask of every lesion. Each volume is built in Hounsfield units (HU)
on a normalised grid, so any ``shape`` gives the same anatomy at a different resolution:

* air (-1000 HU) around an elliptic-cylinder body of soft tissue (~40 HU);
* two lung ellipsoids (~-850 HU) left and right of a mediastinum;
* vessels: 6-10 tubes per lung (~0..+40 HU, thinning outwards) from the hilum to the periphery;
* lesions, by class (label order of CC-CCII: 0 = NCP/COVID-19, 1 = CP/common pneumonia, 2 = normal):

  - **COVID-19**: 3-8 small-to-medium **ground-glass opacities** (about -700..-450 HU, soft edges),
    **peripheral / subpleural** and usually **bilateral** (both lungs with probability 0.8), sometimes with
    a small denser core;
  - **common pneumonia**: 1-2 **dense consolidations** (about -250..+20 HU), larger, **mostly one-sided**
    (unilateral with probability 0.8), central or dependent (posterior);
  - **normal**: no lesion (empty mask);

* a posterior (dependent) density gradient, Gaussian noise (15-40 HU) and a slight blur on every volume.

Sizes, contrasts, counts and positions are random, and the classes overlap at the margins (faint GGOs,
small unilateral consolidations), so a small 3-D CNN does not separate them perfectly.

Schema of :func:`chest_ct_phantom` (a :class:`ChestCT`): ``volume`` float32 (D, H, W) in HU, axes
(z = cranio-caudal, y = anterior->posterior, x = patient right->left); ``lesion_mask`` bool (D, H, W) (lesion
voxels inside the lungs); ``lung_mask`` bool (D, H, W); ``label`` int; ``lesions`` a list of dicts
(``kind`` "ggo" | "consolidation", ``side`` 0 = first lung (x < 0) | 1, ``center`` and ``radii`` in normalised
coordinates). :func:`chest_ct_dataset` stacks ``n`` of them with balanced, shuffled labels. Seeded and
vectorised numpy; a 64^3 volume takes well under a second (``benchmarks/bench_phantom.py`` of ``nlran``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import gaussian_filter

CLASSES: tuple[str, ...] = ("covid19", "common_pneumonia", "normal")
"""Class names by label, in the order of CC-CCII's folders NCP, CP, Normal."""

AIR_HU, BODY_HU, LUNG_HU = -1000.0, 40.0, -850.0


@dataclass
class ChestCT:
    """One phantom: the HU volume, its lesion and lung masks, its label and the lesion list."""

    volume: np.ndarray
    lesion_mask: np.ndarray
    lung_mask: np.ndarray
    label: int
    lesions: list[dict] = field(default_factory=list)


def _grid(shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Voxel-centre coordinates in [-1, 1] along each axis, broadcastable to ``shape`` (z, y, x)."""
    axes = [((np.arange(n, dtype=np.float32) + 0.5) / n) * 2 - 1 for n in shape]
    return axes[0][:, None, None], axes[1][None, :, None], axes[2][None, None, :]


def _ellipsoid_r(z, y, x, center, radii) -> np.ndarray:
    """Normalised ellipsoidal radius: < 1 inside the ellipsoid ``center``/``radii`` (z, y, x)."""
    return np.sqrt(((z - center[0]) / radii[0]) ** 2 + ((y - center[1]) / radii[1]) ** 2
                   + ((x - center[2]) / radii[2]) ** 2)


def _soft(r: np.ndarray, softness: float) -> np.ndarray:
    """A blob profile in [0, 1]: ~1 well inside (r < 1 - softness), 0.5 at r = 1, ~0 outside."""
    return 1.0 / (1.0 + np.exp(np.clip((r - 1.0) / max(softness, 1e-3), -30, 30)))


def _segment_distance(z, y, x, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance of every voxel to the segment a->b (points in normalised (z, y, x))."""
    d = b - a
    t = ((z - a[0]) * d[0] + (y - a[1]) * d[1] + (x - a[2]) * d[2]) / float(d @ d + 1e-9)
    t = np.clip(t, 0.0, 1.0)
    return np.sqrt((z - a[0] - t * d[0]) ** 2 + (y - a[1] - t * d[1]) ** 2 + (x - a[2] - t * d[2]) ** 2)


def _point_in_lung(rng: np.random.Generator, lung: dict, radial: tuple[float, float],
                   posterior_bias: float = 0.0) -> np.ndarray:
    """A point inside ``lung`` at a fraction ``radial`` of its ellipsoidal radius (peripheral if ~0.8)."""
    v = rng.normal(size=3)
    v[1] += posterior_bias  # +y is posterior (dependent) in supine CT
    v /= np.linalg.norm(v) + 1e-9
    return lung["center"] + v * lung["radii"] * rng.uniform(*radial)


def chest_ct_phantom(label: int, shape: tuple[int, int, int] = (64, 64, 64),
                     rng: np.random.Generator | int | None = None) -> ChestCT:
    """One random chest CT phantom of class ``label`` (0 COVID-19, 1 common pneumonia, 2 normal).

    Args:
        label: the class; see :data:`CLASSES`.
        shape: (D, H, W) voxels; anatomy is defined on a normalised grid, so any size works (>= 8 each).
        rng: a numpy Generator or a seed.

    Returns:
        A :class:`ChestCT` whose ``lesion_mask`` is empty exactly when ``label == 2``.
    """
    if label not in (0, 1, 2):
        raise ValueError(f"label must be 0 (covid19), 1 (common_pneumonia) or 2 (normal), got {label!r}")
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 8:
        raise ValueError(f"shape must be three sizes (D, H, W), each >= 8, got {shape}")
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    z, y, x = _grid(shape)

    # Body (elliptic cylinder along z) and soft tissue.
    body = ((x / rng.uniform(0.85, 0.95)) ** 2 + (y / rng.uniform(0.65, 0.75)) ** 2) < 1.0
    hu = np.where(body, BODY_HU, AIR_HU).astype(np.float32) * np.ones(shape, np.float32)

    # Two lungs (x < 0 is side 0), separated by the mediastinum.
    lungs, lung_r = [], []
    for sign in (-1.0, 1.0):
        lung = {"center": np.array([rng.uniform(-0.05, 0.05), rng.uniform(-0.05, 0.05),
                                    sign * rng.uniform(0.38, 0.44)], np.float32),
                "radii": np.array([rng.uniform(0.8, 0.9), rng.uniform(0.45, 0.52),
                                   rng.uniform(0.26, 0.31)], np.float32)}
        lungs.append(lung)
        lung_r.append(_ellipsoid_r(z, y, x, lung["center"], lung["radii"]))
    lung_mask = (lung_r[0] < 1.0) | (lung_r[1] < 1.0)
    hu[lung_mask] = LUNG_HU
    # Dependent (posterior) density gradient inside the lungs.
    hu += np.where(lung_mask, rng.uniform(0.0, 60.0) * np.maximum(y, 0.0), 0.0).astype(np.float32)

    # Vessels: tubes from the hilum towards the periphery, thinner for smaller vessels.
    vessels = np.zeros(shape, np.float32)
    for lung in lungs:
        hilum = lung["center"] * np.array([1.0, 1.0, 0.55], np.float32)
        for _ in range(int(rng.integers(6, 11))):
            tip = _point_in_lung(rng, lung, (0.6, 0.95))
            radius = rng.uniform(0.015, 0.035)
            vessels = np.maximum(vessels, _soft(_segment_distance(z, y, x, hilum, tip) / radius, 0.3))
    hu = np.where(lung_mask, hu + vessels * (rng.uniform(0.0, 40.0) - LUNG_HU), hu)

    # Lesions.
    lesions: list[dict] = []
    if label == 0:  # COVID-19: bilateral peripheral ground-glass opacities
        n = int(rng.integers(3, 9))
        bilateral = rng.random() < 0.8
        first = int(rng.integers(2))
        sides = [(first + i) % 2 if bilateral else first for i in range(n)]
        for side in sides:
            lesions.append({"kind": "ggo", "side": side,
                            "center": _point_in_lung(rng, lungs[side], (0.7, 0.92)),
                            "radii": rng.uniform(0.08, 0.17, size=3) * np.array([1.6, 1.0, 1.0]),
                            "hu": rng.uniform(-700.0, -450.0), "softness": rng.uniform(0.15, 0.35),
                            "core": rng.random() < 0.25})
    elif label == 1:  # common pneumonia: larger dense consolidation, mostly one-sided, central/dependent
        n = int(rng.integers(1, 3))
        first = int(rng.integers(2))
        sides = [first if (i == 0 or rng.random() < 0.8) else 1 - first for i in range(n)]
        for side in sides:
            lesions.append({"kind": "consolidation", "side": side,
                            "center": _point_in_lung(rng, lungs[side], (0.0, 0.6), posterior_bias=1.0),
                            "radii": rng.uniform(0.15, 0.28, size=3) * np.array([1.8, 1.0, 0.9]),
                            "hu": rng.uniform(-250.0, 20.0), "softness": rng.uniform(0.05, 0.15),
                            "core": False})
    lesion_mask = np.zeros(shape, bool)
    for les in lesions:
        r = _ellipsoid_r(z, y, x, les["center"], les["radii"])
        inside_lung = lung_r[les["side"]] < 1.0
        w = _soft(r, les["softness"]) * inside_lung
        if les["kind"] == "ggo":  # fine reticular texture ("crazy paving") modulates the opacity
            w = w * (0.75 + 0.25 * rng.random(shape, dtype=np.float32))
        hu = hu + w * (les["hu"] - LUNG_HU) * (hu < les["hu"])
        if les["core"]:
            core = _soft(r / 0.4, 0.1) * inside_lung
            hu = np.maximum(hu, core * -100.0 + (1 - core) * hu)
        lesion_mask |= (r < 1.0) & inside_lung
        les["center"], les["radii"] = les["center"].tolist(), les["radii"].tolist()

    # Acquisition: a slight blur (partial volume) and noise.
    hu = gaussian_filter(hu.astype(np.float32), sigma=0.6 * min(shape) / 64.0)
    hu += rng.normal(0.0, rng.uniform(15.0, 40.0), size=shape).astype(np.float32)
    return ChestCT(volume=hu.astype(np.float32), lesion_mask=lesion_mask, lung_mask=lung_mask,
                   label=int(label), lesions=lesions)


def chest_ct_dataset(n: int, shape: tuple[int, int, int] = (64, 64, 64), seed: int = 0
                     ) -> dict[str, np.ndarray]:
    """``n`` phantoms with balanced, shuffled labels (deterministic in ``seed``).

    Returns:
        ``{"volumes": float32 (n, D, H, W) HU, "lesion_masks": bool (n, D, H, W),
        "lung_masks": bool (n, D, H, W), "labels": int64 (n,)}``.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % len(CLASSES)).astype(np.int64)
    cts = [chest_ct_phantom(int(c), shape, rng) for c in labels]
    return {"volumes": np.stack([c.volume for c in cts]), "lesion_masks": np.stack([c.lesion_mask for c in cts]),
            "lung_masks": np.stack([c.lung_mask for c in cts]), "labels": labels}


def window(hu: np.ndarray, lo: float = -1200.0, hi: float = 600.0) -> np.ndarray:
    """Clip HU to the window [lo, hi] and scale to [0, 1] (the lung window used by the loaders)."""
    if hi <= lo:
        raise ValueError(f"window needs lo < hi, got ({lo}, {hi})")
    return np.clip((np.asarray(hu, np.float32) - lo) / (hi - lo), 0.0, 1.0)
