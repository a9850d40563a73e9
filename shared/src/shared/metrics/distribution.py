"""Distances between sets of samples: Fréchet distance, sliced Wasserstein distance and MMD.

**Fréchet distance and FID.** :func:`frechet_distance` is the distance between Gaussians fitted to two
feature sets, ||mu_a - mu_b||² + Tr(S_a + S_b - 2 (S_a S_b)^½) (Heusel et al. 2017). It becomes *FID* only
when the features are the 2048-d pool features of the TF-Inception-v3 network used by the reference FID
code: this repo does not download those weights. To compute FID proper, obtain the Inception weights
(e.g. ``pt_inception-2015-12-05-6726825d.pth``, as used by pytorch-fid / EDM), load them into your feature
extractor, and pass features (or the extractor) here. With any other extractor (for instance a digits
classifier trained in a project) call the number a Fréchet distance in that feature space, not FID.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import linalg

from shared.metrics.classification import as_numpy


def _features(x, name: str) -> np.ndarray:
    arr = as_numpy(x, name).astype(np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a (n_samples, n_features) array, got shape {arr.shape}")
    return arr


def gaussian_stats(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean (d,) and unbiased covariance (d, d) of a (n, d) feature set (n >= 2)."""
    f = _features(features, "features")
    if f.shape[0] < 2:
        raise ValueError(f"need at least 2 samples for a covariance, got {f.shape[0]}")
    return f.mean(axis=0), np.atleast_2d(np.cov(f, rowvar=False))


def frechet_distance_from_stats(mu_a, cov_a, mu_b, cov_b, eps: float = 1e-6) -> float:
    """Fréchet distance between N(mu_a, cov_a) and N(mu_b, cov_b)."""
    mu_a, mu_b = np.atleast_1d(mu_a), np.atleast_1d(mu_b)
    cov_a, cov_b = np.atleast_2d(cov_a), np.atleast_2d(cov_b)
    if mu_a.shape != mu_b.shape or cov_a.shape != cov_b.shape or cov_a.shape != (mu_a.size, mu_a.size):
        raise ValueError(f"inconsistent shapes: mu {mu_a.shape}/{mu_b.shape}, cov {cov_a.shape}/{cov_b.shape}")
    covmean = linalg.sqrtm(cov_a @ cov_b)
    if not np.isfinite(covmean).all():  # near-singular product: regularise, as the reference FID code does
        offset = np.eye(cov_a.shape[0]) * eps
        covmean = linalg.sqrtm((cov_a + offset) @ (cov_b + offset))
    covmean = np.real(covmean)
    diff = mu_a - mu_b
    return float(diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(covmean))


def frechet_distance(features_a, features_b, extractor: Callable | None = None) -> float:
    """Fréchet distance between two sample sets, optionally mapped through ``extractor`` first.

    Args:
        features_a, features_b: (n, d) features, or raw samples when ``extractor`` is given.
        extractor: a callable mapping a batch of samples to (n, d) features (e.g. a torch module in eval
            mode wrapped to return numpy). See the module docstring for FID proper.
    """
    if extractor is not None:
        features_a, features_b = extractor(features_a), extractor(features_b)
    mu_a, cov_a = gaussian_stats(features_a)
    mu_b, cov_b = gaussian_stats(features_b)
    if mu_a.shape != mu_b.shape:
        raise ValueError(f"feature dimensions differ: {mu_a.shape[0]} vs {mu_b.shape[0]}")
    return frechet_distance_from_stats(mu_a, cov_a, mu_b, cov_b)


def sliced_wasserstein(x, y, n_projections: int = 256, p: int = 2, seed: int = 0) -> float:
    """Sliced p-Wasserstein distance between two (n, d) and (m, d) sample sets.

    Averages, over ``n_projections`` random unit directions (seeded, so the value is deterministic), the
    p-th power of the 1-D Wasserstein distance between the projected samples (computed exactly by matching
    quantiles at (n + m) evenly spaced levels), and returns the p-th root of that average.
    """
    a, b = _features(x, "x"), _features(y, "y")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"x and y must have the same dimension, got {a.shape[1]} and {b.shape[1]}")
    rng = np.random.default_rng(seed)
    dirs = rng.standard_normal((a.shape[1], n_projections))
    dirs /= np.linalg.norm(dirs, axis=0, keepdims=True)
    pa, pb = np.sort(a @ dirs, axis=0), np.sort(b @ dirs, axis=0)
    n, m = pa.shape[0], pb.shape[0]
    # Both empirical quantile functions are step functions, with steps at multiples of 1/n and 1/m. On each interval
    # between consecutive merged breakpoints both are constant, so the integral over q of |F_a^-1 - F_b^-1|^p is an
    # exact weighted sum (for n = m it is the plain mean over sorted pairs).
    breaks = np.unique(np.concatenate([np.arange(1, n + 1) / n, np.arange(1, m + 1) / m]))
    widths = np.diff(breaks, prepend=0.0)
    mid = breaks - widths / 2
    qa = pa[np.minimum((mid * n).astype(int), n - 1)]
    qb = pb[np.minimum((mid * m).astype(int), m - 1)]
    per_direction = (widths[:, None] * np.abs(qa - qb) ** p).sum(axis=0)
    return float(np.mean(per_direction) ** (1.0 / p))


def mmd(x, y, bandwidth: float | None = None) -> float:
    """Unbiased squared maximum mean discrepancy with a Gaussian kernel exp(-||u-v||² / (2 h²)).

    ``bandwidth`` h defaults to the median pairwise distance of the pooled samples (the median heuristic).
    """
    a, b = _features(x, "x"), _features(y, "y")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"x and y must have the same dimension, got {a.shape[1]} and {b.shape[1]}")
    if a.shape[0] < 2 or b.shape[0] < 2:
        raise ValueError("mmd needs at least 2 samples in each set")
    z = np.concatenate([a, b])
    d2 = np.maximum(np.sum(z**2, 1)[:, None] + np.sum(z**2, 1)[None, :] - 2 * z @ z.T, 0.0)
    if bandwidth is None:
        bandwidth = float(np.sqrt(np.median(d2[np.triu_indices_from(d2, k=1)]))) or 1.0
    k = np.exp(-d2 / (2 * bandwidth**2))
    n, m = a.shape[0], b.shape[0]
    kxx, kyy, kxy = k[:n, :n], k[n:, n:], k[:n, n:]
    term_x = (kxx.sum() - np.trace(kxx)) / (n * (n - 1))
    term_y = (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(term_x + term_y - 2 * kxy.mean())
