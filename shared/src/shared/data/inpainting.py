"""Real photographs inpainted inside random masks: an offline data set for inpainting localisation.

Each sample is a crop of a real photo (:func:`shared.data.photos`) rescaled to ``size x size``, a random mask
(free-form brush strokes or an object-like shape: ellipse, polygon, smooth blob), and the crop with the
masked pixels re-synthesised by one of four classical inpainting methods:

* ``telea`` -- OpenCV fast-marching inpainting (Telea 2004), ``cv2.INPAINT_TELEA``;
* ``ns`` -- OpenCV Navier-Stokes inpainting (Bertalmio et al. 2001), ``cv2.INPAINT_NS``;
* ``biharmonic`` -- scikit-image biharmonic inpainting (Damelin & Hoang 2018);
* ``exemplar`` -- a patch (exemplar) fill: the hole's bounding box is filled by the best-matching patch from
  elsewhere in the same crop, chosen by masked sum of squared differences on the known ring around the hole
  (``cv2.matchTemplate`` with a mask); only the hole's pixels are replaced.

The inpainted crop is re-compressed as JPEG (random quality) so that no method leaves a lossless
"too-clean" cue. The ground-truth mask and the method name are returned with every sample. Everything is
deterministic given the seed; the inpainting itself runs on the crop (never on the whole photo), so the
slow biharmonic solver stays fast.

Schema of :func:`inpainting_dataset` (N samples)::

    images   uint8 (N, size, size, 3)  RGB, the inpainted (tampered) crops
    masks    uint8 (N, size, size)     1 inside the inpainted region, 0 elsewhere
    methods  list[str] (N,)            one of INPAINT_METHODS
    photos   list[str] (N,)            the source photo's name
    mask_kinds list[str] (N,)          "freeform" or "object"
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from shared.data.offline import PHOTO_NAMES, photos

INPAINT_METHODS: tuple[str, ...] = ("telea", "ns", "biharmonic", "exemplar")
MASK_KINDS: tuple[str, ...] = ("freeform", "object")


# ---------------------------------------------------------------------------------------------------------
# masks
# ---------------------------------------------------------------------------------------------------------
def freeform_mask(rng: np.random.Generator, size: int, *, max_strokes: int = 4) -> np.ndarray:
    """Random brush strokes (polylines with random width), as in free-form inpainting masks.

    Returns a uint8 (size, size) array of 0/1.
    """
    mask = np.zeros((size, size), np.uint8)
    for _ in range(rng.integers(1, max_strokes + 1)):
        n_vertices = int(rng.integers(2, 6))
        start = rng.uniform(0.15, 0.85, size=2) * size
        angles = rng.uniform(0, 2 * np.pi, size=n_vertices)
        lengths = rng.uniform(0.08, 0.3, size=n_vertices) * size
        steps = np.stack([np.cos(angles), np.sin(angles)], axis=1) * lengths[:, None]
        points = np.clip(start + np.cumsum(steps, axis=0), 0, size - 1)
        points = np.vstack([start, points]).round().astype(np.int32)
        width = int(max(2, rng.uniform(0.04, 0.1) * size))
        cv2.polylines(mask, [points.reshape(-1, 1, 2)], isClosed=False, color=1, thickness=width)
    return mask


def object_mask(rng: np.random.Generator, size: int) -> np.ndarray:
    """One object-like region: an ellipse, a random star-shaped polygon, or a smooth blob (thresholded
    low-pass noise, largest component). Covers roughly 3-25% of the crop. uint8 (size, size) of 0/1."""
    mask = np.zeros((size, size), np.uint8)
    centre = rng.uniform(0.3, 0.7, size=2) * size
    shape = rng.integers(3)
    if shape == 0:
        axes = (rng.uniform(0.08, 0.25, size=2) * size).round().astype(int)
        cv2.ellipse(mask, tuple(int(c) for c in centre.round()), tuple(int(a) for a in axes),
                    float(rng.uniform(0, 180)), 0, 360, color=1, thickness=-1)
    elif shape == 1:
        n = int(rng.integers(5, 10))
        angles = np.sort(rng.uniform(0, 2 * np.pi, size=n))
        radii = rng.uniform(0.08, 0.25, size=n) * size
        points = centre + np.stack([np.cos(angles), np.sin(angles)], axis=1) * radii[:, None]
        cv2.fillPoly(mask, [points.round().astype(np.int32).reshape(-1, 1, 2)], color=1)
    else:
        noise = rng.standard_normal((size, size)).astype(np.float32)
        noise = cv2.GaussianBlur(noise, (0, 0), sigmaX=size / 10)
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
        falloff = np.exp(-((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2) / (2 * (0.18 * size) ** 2))
        field = noise / (noise.std() + 1e-8) * 0.5 + falloff * 2.0
        mask = (field > np.quantile(field, 1 - rng.uniform(0.05, 0.2))).astype(np.uint8)
        count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        if count > 1:
            mask = (labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))).astype(np.uint8)
    return mask


def random_mask(rng: np.random.Generator, size: int, kind: str | None = None, *,
                min_fraction: float = 0.02, max_fraction: float = 0.35) -> tuple[np.ndarray, str]:
    """A free-form or object-like mask whose area fraction lies in ``[min_fraction, max_fraction]``
    (redrawn until it does). Returns ``(mask uint8 0/1, kind)``."""
    if kind is not None and kind not in MASK_KINDS:
        raise ValueError(f"unknown mask kind {kind!r}; expected one of {MASK_KINDS}")
    kind = kind or MASK_KINDS[rng.integers(len(MASK_KINDS))]
    for _ in range(50):
        mask = freeform_mask(rng, size) if kind == "freeform" else object_mask(rng, size)
        if min_fraction <= mask.mean() <= max_fraction:
            return mask, kind
    return mask, kind  # pathological sizes: accept the last draw rather than loop forever


# ---------------------------------------------------------------------------------------------------------
# inpainting methods
# ---------------------------------------------------------------------------------------------------------
def exemplar_fill(image: np.ndarray, mask: np.ndarray, *, margin: int = 4) -> np.ndarray:
    """Patch (exemplar) fill: copy the best-matching patch of the same image into the hole.

    The template is the hole's bounding box grown by ``margin``; its known pixels (the ring around the hole)
    are compared by masked SSD with every placement in the image (``cv2.matchTemplate(TM_SQDIFF, mask=...)``).
    Placements overlapping the hole are excluded. The chosen patch's pixels replace the hole's pixels
    (pixels outside the mask are untouched, so the ground-truth mask stays exact).
    """
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return image.copy()
    h, w = mask.shape
    y0, y1 = max(ys.min() - margin, 0), min(ys.max() + margin + 1, h)
    x0, x1 = max(xs.min() - margin, 0), min(xs.max() + margin + 1, w)
    th, tw = y1 - y0, x1 - x0
    if th >= h or tw >= w:  # hole too large to find a source patch elsewhere: fall back to Telea
        return cv2.inpaint(image, mask, 3, cv2.INPAINT_TELEA)
    img = image.astype(np.float32)
    template = img[y0:y1, x0:x1]
    known = np.repeat((1 - mask[y0:y1, x0:x1]).astype(np.float32)[..., None], 3, axis=2)
    score = cv2.matchTemplate(img, template, cv2.TM_SQDIFF, mask=known)
    # exclude placements whose window intersects the hole's box (integral image of the hole indicator)
    hole = np.zeros((h, w), np.float32)
    hole[y0:y1, x0:x1] = mask[y0:y1, x0:x1]
    integral = cv2.integral(hole)
    overlap = (integral[th:, tw:] - integral[:-th, tw:] - integral[th:, :-tw] + integral[:-th, :-tw])
    score = np.where((overlap > 0) | ~np.isfinite(score), np.inf, score)
    if not np.isfinite(score).any():
        return cv2.inpaint(image, mask, 3, cv2.INPAINT_TELEA)
    sy, sx = np.unravel_index(int(np.argmin(score)), score.shape)
    out = image.copy()
    window = out[y0:y1, x0:x1]
    inside = mask[y0:y1, x0:x1] > 0
    window[inside] = image[sy:sy + th, sx:sx + tw][inside]
    return out


def inpaint(image: np.ndarray, mask: np.ndarray, method: str, *, radius: int = 3) -> np.ndarray:
    """Inpaint ``image`` (uint8 RGB (H, W, 3)) inside ``mask`` ((H, W), nonzero = hole) by ``method``.

    Pixels outside the mask are returned unchanged (before any JPEG re-compression).
    """
    if method not in INPAINT_METHODS:
        raise ValueError(f"unknown inpainting method {method!r}; expected one of {INPAINT_METHODS}")
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
    if mask.shape != image.shape[:2]:
        raise ValueError(f"mask shape {mask.shape} does not match image {image.shape[:2]}")
    hole = (mask > 0).astype(np.uint8)
    if method == "telea":
        out = cv2.inpaint(image, hole, radius, cv2.INPAINT_TELEA)
    elif method == "ns":
        out = cv2.inpaint(image, hole, radius, cv2.INPAINT_NS)
    elif method == "biharmonic":
        from skimage.restoration import inpaint_biharmonic

        filled = inpaint_biharmonic(image.astype(np.float64) / 255.0, hole.astype(bool), channel_axis=-1)
        out = np.clip(filled * 255.0 + 0.5, 0, 255).astype(np.uint8)
    else:
        out = exemplar_fill(image, hole)
    return np.where(hole[..., None] > 0, out, image)


def jpeg_roundtrip(image: np.ndarray, quality: int) -> np.ndarray:
    """Encode and decode an RGB uint8 image as JPEG at ``quality`` (1-100)."""
    ok, buf = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("cv2.imencode failed to encode a JPEG")
    return np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])


# ---------------------------------------------------------------------------------------------------------
# samples and data sets
# ---------------------------------------------------------------------------------------------------------
@dataclass
class InpaintedSample:
    """One sample: the inpainted crop, its mask, the untouched crop, and where it came from."""

    image: np.ndarray  # uint8 (size, size, 3), inpainted then JPEG re-compressed
    mask: np.ndarray  # uint8 (size, size), 1 = inpainted
    original: np.ndarray  # uint8 (size, size, 3), the crop before inpainting (same JPEG quality)
    method: str
    photo: str
    mask_kind: str


def random_crop(rng: np.random.Generator, photo: np.ndarray, size: int, *,
                scale: tuple[float, float] = (1.0, 3.0)) -> np.ndarray:
    """A random square crop of side ``s * size`` (``s`` uniform in ``scale``, clipped to the photo) rescaled
    to ``size x size`` (area interpolation when shrinking, bicubic when enlarging); random horizontal flip."""
    h, w = photo.shape[:2]
    side = int(min(rng.uniform(*scale) * size, h, w))
    y = int(rng.integers(0, h - side + 1))
    x = int(rng.integers(0, w - side + 1))
    crop = photo[y:y + side, x:x + side]
    interp = cv2.INTER_AREA if side >= size else cv2.INTER_CUBIC
    crop = cv2.resize(crop, (size, size), interpolation=interp)
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    return np.ascontiguousarray(crop)


def make_sample(rng: np.random.Generator, source: dict[str, np.ndarray], size: int, method: str, *,
                mask_kind: str | None = None, jpeg_quality: tuple[int, int] | None = (75, 95),
                scale: tuple[float, float] = (1.0, 3.0)) -> InpaintedSample:
    """Draw one inpainted sample from the photos in ``source`` (name -> uint8 RGB)."""
    names = sorted(source)
    name = names[rng.integers(len(names))]
    crop = random_crop(rng, source[name], size, scale=scale)
    mask, kind = random_mask(rng, size, mask_kind)
    tampered = inpaint(crop, mask, method)
    if jpeg_quality is not None:
        quality = int(rng.integers(jpeg_quality[0], jpeg_quality[1] + 1))
        tampered, crop = jpeg_roundtrip(tampered, quality), jpeg_roundtrip(crop, quality)
    return InpaintedSample(tampered, mask, crop, method, name, kind)


def inpainting_dataset(n: int, *, size: int = 64, methods: Sequence[str] = INPAINT_METHODS, seed: int = 0,
                       photo_names: Sequence[str] | None = None, mask_kind: str | None = None,
                       jpeg_quality: tuple[int, int] | None = (75, 95),
                       scale: tuple[float, float] = (1.0, 3.0)) -> dict[str, object]:
    """``n`` inpainted crops, the methods cycling through ``methods`` (balanced), deterministic in ``seed``.

    Args:
        n: number of samples.
        size: side of the square crops (pixels).
        methods: inpainting methods to use (subset of :data:`INPAINT_METHODS`).
        seed: seed of the numpy Generator that draws crops, masks and JPEG qualities.
        photo_names: which photos to crop (default: every photo, grayscale included); use disjoint lists for
            train and test splits.
        mask_kind: ``"freeform"``, ``"object"`` or ``None`` (random per sample).
        jpeg_quality: inclusive range of the JPEG re-compression quality, or ``None`` for none.
        scale: crop side relative to ``size`` before rescaling (``> 1`` shrinks the photo).

    Returns:
        dict with ``images`` (N, size, size, 3) uint8, ``masks`` (N, size, size) uint8, ``originals``
        (N, size, size, 3) uint8, and lists ``methods``, ``photos``, ``mask_kinds``.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if size < 16:
        raise ValueError(f"size must be at least 16 pixels, got {size}")
    bad = [m for m in methods if m not in INPAINT_METHODS]
    if bad or not methods:
        raise ValueError(f"unknown or no inpainting methods {list(methods)}; expected some of {INPAINT_METHODS}")
    source = photos(list(photo_names) if photo_names is not None else list(PHOTO_NAMES))
    rng = np.random.default_rng(seed)
    samples = [make_sample(rng, source, size, methods[i % len(methods)], mask_kind=mask_kind,
                           jpeg_quality=jpeg_quality, scale=scale) for i in range(n)]
    return {
        "images": np.stack([s.image for s in samples]),
        "masks": np.stack([s.mask for s in samples]),
        "originals": np.stack([s.original for s in samples]),
        "methods": [s.method for s in samples],
        "photos": [s.photo for s in samples],
        "mask_kinds": [s.mask_kind for s in samples],
    }
