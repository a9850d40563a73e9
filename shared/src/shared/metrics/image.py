"""Image fidelity metrics: MSE, PSNR and SSIM, optionally restricted to a mask.

Images are float arrays in [0, ``data_range``] shaped (H, W) or (H, W, C) (channels last), or torch tensors
shaped (C, H, W), which are moved to channels last. A mask is (H, W), nonzero where pixels count.
SSIM comes from scikit-image (Gaussian window, sigma 1.5, as Wang et al. 2004); with a mask, the local SSIM
map is averaged over the masked pixels (away from the 5-pixel border, as scikit-image does).
"""

from __future__ import annotations

import numpy as np
from skimage.metrics import structural_similarity

from shared.metrics.classification import as_numpy

_SSIM_PAD = 5  # (11 - 1) // 2: the Gaussian window of sigma 1.5 is 11 pixels wide


def _pair(a, b, mask) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    x, y = as_numpy(a, "image_a"), as_numpy(b, "image_b")
    if hasattr(a, "detach") and x.ndim == 3:  # torch (C, H, W) -> (H, W, C)
        x = np.moveaxis(x, 0, -1)
    if hasattr(b, "detach") and y.ndim == 3:
        y = np.moveaxis(y, 0, -1)
    if x.shape != y.shape or x.ndim not in (2, 3):
        raise ValueError(f"images must share a (H, W) or (H, W, C) shape, got {x.shape} and {y.shape}")
    m = None
    if mask is not None:
        m = as_numpy(mask, "mask").astype(bool)
        if m.shape != x.shape[:2]:
            raise ValueError(f"mask must be (H, W) = {x.shape[:2]}, got {m.shape}")
        if not m.any():
            raise ValueError("mask selects no pixel; expected at least one nonzero entry")
    return x.astype(np.float64), y.astype(np.float64), m


def mse(a, b, mask=None) -> float:
    """Mean squared error over all pixels (and channels), or over the pixels where ``mask`` is set."""
    x, y, m = _pair(a, b, mask)
    sq = (x - y) ** 2
    return float(sq[m].mean() if m is not None else sq.mean())


def psnr(a, b, mask=None, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio 10·log10(data_range² / MSE) in dB (``inf`` for identical images)."""
    err = mse(a, b, mask)
    return float("inf") if err == 0 else float(10 * np.log10(data_range**2 / err))


def ssim(a, b, mask=None, data_range: float = 1.0) -> float:
    """Structural similarity (scikit-image, Gaussian weights); the SSIM map averaged inside ``mask`` if given."""
    x, y, m = _pair(a, b, mask)
    if min(x.shape[:2]) < 11:
        raise ValueError(f"ssim needs images of at least 11x11 pixels, got {x.shape[:2]}")
    kwargs = dict(data_range=data_range, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, full=True)
    if x.ndim == 3:
        kwargs["channel_axis"] = -1
    value, smap = structural_similarity(x, y, **kwargs)
    if m is None:
        return float(value)
    if smap.ndim == 3:
        smap = smap.mean(axis=-1)
    # scikit-image averages the map without a border of (window - 1) / 2 = 5 pixels (Gaussian window of 11);
    # do the same inside the mask, so that an all-ones mask gives exactly the unmasked SSIM.
    inner = np.zeros_like(m)
    inner[_SSIM_PAD:-_SSIM_PAD, _SSIM_PAD:-_SSIM_PAD] = True
    if not (m & inner).any():
        raise ValueError(f"mask selects no pixel farther than {_SSIM_PAD} px from the border, where SSIM is defined")
    return float(smap[m & inner].mean())
