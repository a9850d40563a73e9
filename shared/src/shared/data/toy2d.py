"""Seeded low-dimensional mixtures for diffusion / generative-model toys (2-D points).

Every generator returns ``(points, labels)``: ``points`` a float32 array of shape ``(n, 2)``, ``labels`` an
int64 array of shape ``(n,)`` holding the index of the mixture component (the ground truth) each point was
drawn from. The same ``seed`` gives the same samples; generation is vectorised numpy.

* :func:`ring_gaussians` -- ``n_modes`` equal-weight isotropic Gaussians on a circle (the "8 Gaussians" toy;
  the default radius sqrt(2) and std 0.1 give a per-coordinate data std close to 1, like EDM's sigma_data);
* :func:`grid_gaussians` -- ``side x side`` Gaussians on a square grid (the "25 Gaussians" toy);
* :func:`spiral` -- a noisy two-arm spiral (labels: the arm).
"""

from __future__ import annotations

import numpy as np

__all__ = ["TOY2D_NAMES", "grid_gaussians", "ring_gaussians", "spiral", "toy2d"]


def _check(n: int, std: float) -> None:
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if std < 0:
        raise ValueError(f"std must be non-negative, got {std!r}")


def ring_gaussians(n: int, *, n_modes: int = 8, radius: float = float(np.sqrt(2.0)), std: float = 0.1,
                   seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points from ``n_modes`` Gaussians N(c_k, std² I), c_k = radius·(cos 2πk/n_modes, sin 2πk/n_modes)."""
    _check(n, std)
    if n_modes < 1:
        raise ValueError(f"n_modes must be >= 1, got {n_modes}")
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_modes, size=n)
    angle = 2 * np.pi * labels / n_modes
    centres = radius * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    points = centres + std * rng.standard_normal((n, 2))
    return points.astype(np.float32), labels.astype(np.int64)


def grid_gaussians(n: int, *, side: int = 5, spacing: float = 0.5, std: float = 0.05,
                   seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points from ``side²`` Gaussians centred on a grid with ``spacing``, centred at the origin."""
    _check(n, std)
    if side < 1:
        raise ValueError(f"side must be >= 1, got {side}")
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, side * side, size=n)
    coords = (np.arange(side) - (side - 1) / 2) * spacing
    centres = np.stack([coords[labels // side], coords[labels % side]], axis=1)
    points = centres + std * rng.standard_normal((n, 2))
    return points.astype(np.float32), labels.astype(np.int64)


def spiral(n: int, *, turns: float = 1.5, scale: float = 1.5, std: float = 0.05,
           seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points on two interleaved Archimedean spiral arms (radius up to ``scale``) plus N(0, std²) noise."""
    _check(n, std)
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=n)
    u = np.sqrt(rng.uniform(0.0, 1.0, size=n))  # denser towards the outer end, roughly uniform in arc length
    angle = 2 * np.pi * turns * u + np.pi * labels
    points = scale * u[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    points = points + std * rng.standard_normal((n, 2))
    return points.astype(np.float32), labels.astype(np.int64)


TOY2D_NAMES = ("ring", "grid", "spiral")


def toy2d(name: str, n: int, *, seed: int = 0, **kwargs) -> tuple[np.ndarray, np.ndarray]:
    """Dispatch by name (one of :data:`TOY2D_NAMES`) to the generators above."""
    generators = {"ring": ring_gaussians, "grid": grid_gaussians, "spiral": spiral}
    if name not in generators:
        raise ValueError(f"unknown 2-D toy {name!r}; expected one of {TOY2D_NAMES}")
    return generators[name](n, seed=seed, **kwargs)
