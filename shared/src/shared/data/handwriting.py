"""Synthetic multi-writer handwriting of the lowercase word "and" (offline stand-in for CEDAR AND).

Each *writer* has a fixed style, sampled once from the seed; each *sample* of that writer is the style
rendered with fresh within-writer jitter. Writer verification on this set is therefore a real task: two
samples of one writer share every style attribute and differ only by jitter; two writers differ in some
attributes (and by chance agree on others).

Writer style (fixed per writer, see :data:`STYLE_KEYS`):

* ``font_a``, ``font_n``, ``font_d`` -- letter variant: an OpenCV Hershey face per letter (simplex, duplex,
  complex, triplex, script simplex, script complex), so the "a", "n" and "d" shapes vary independently;
* ``italic`` -- the Hershey italic flag;
* ``thickness`` -- pen width, 2..6 px at the 128 px render scale;
* ``slant`` -- horizontal shear, -0.4..0.4;
* ``tilt`` -- baseline rotation, -7..7 degrees;
* ``x_scale`` -- letter width relative to height, 0.75..1.35;
* ``spacing`` -- gap between letters as a fraction of the letter width, -0.15..0.4;
* ``size_a``, ``size_n``, ``size_d`` -- relative letter heights, 0.8..1.2;
* ``rise_a``, ``rise_n``, ``rise_d`` -- letter baseline offsets, -0.12..0.12 of the letter height;
* ``join`` -- cursive joins (a connecting stroke between neighbouring letters) on/off;
* ``exit_stroke`` -- a trailing upward stroke after the "d" on/off;
* ``ink`` -- ink darkness, 0.7..1.0.

Within-writer jitter (per sample, scaled by ``jitter``): letter positions (+-6 % of the letter width),
thickness +-1 px, slant +-0.07, rotation +-2.5 degrees, scale +-6 %, an elastic displacement field (a smooth
random field, std 1.2 px at 64 px), ink +-0.08, Gaussian blur sigma 0..0.9 px and pixel noise (std 0.03).

Images are cropped to the ink and resized to ``size`` x ``size`` (the CEDAR preprocessing squashes word
crops to 64 x 64 the same way), as float32 in [0, 1] with white paper = 1 and dark ink (like a scan).
File-like names follow CEDAR's ``XXXXy_numZ`` (writer XXXX, page ``a``, sample Z).

Rendering is OpenCV (``cv2.putText``, ``cv2.warpAffine``, ``cv2.remap``) per image; style sampling, jitter
sampling and noise are vectorised numpy. Everything is deterministic given ``seed``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

FONTS: tuple[int, ...] = (
    cv2.FONT_HERSHEY_SIMPLEX,
    cv2.FONT_HERSHEY_DUPLEX,
    cv2.FONT_HERSHEY_COMPLEX,
    cv2.FONT_HERSHEY_TRIPLEX,
    cv2.FONT_HERSHEY_SCRIPT_SIMPLEX,
    cv2.FONT_HERSHEY_SCRIPT_COMPLEX,
)
"""The Hershey faces a writer's letter variants are drawn from."""

STYLE_KEYS: tuple[str, ...] = (
    "font_a", "font_n", "font_d", "italic", "thickness", "slant", "tilt", "x_scale", "spacing",
    "size_a", "size_n", "size_d", "rise_a", "rise_n", "rise_d", "join", "exit_stroke", "ink",
)
"""Names of the per-writer style attributes returned in :attr:`HandwritingSet.styles`."""

_CANVAS_H, _CANVAS_W = 128, 320  # render canvas (pixels); the word is drawn about 40 px tall per letter
_FONT_SCALE = 1.6


@dataclass(frozen=True)
class HandwritingSet:
    """Samples of the word "and" by many synthetic writers.

    Attributes:
        images: float32 (N, size, size), values in [0, 1], white paper = 1, dark ink.
        writer_ids: int64 (N,), 0..n_writers-1, samples of one writer are contiguous.
        sample_ids: int64 (N,), 1..samples_per_writer within each writer.
        names: CEDAR-style ``XXXXy_numZ`` names (``0001a_num1`` = writer 1, sample 1), writer numbers 1-based.
        styles: dict style key -> array (n_writers,) of that writer attribute (see :data:`STYLE_KEYS`).
    """

    images: np.ndarray
    writer_ids: np.ndarray
    sample_ids: np.ndarray
    names: list[str]
    styles: dict[str, np.ndarray]

    def __len__(self) -> int:
        return int(self.images.shape[0])


def sample_writer_styles(n_writers: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Draw ``n_writers`` independent writer styles (vectorised); see the module docstring for the ranges."""
    u = lambda lo, hi: rng.uniform(lo, hi, n_writers)  # noqa: E731
    n_fonts = len(FONTS)
    return {
        "font_a": rng.integers(0, n_fonts, n_writers),
        "font_n": rng.integers(0, n_fonts, n_writers),
        "font_d": rng.integers(0, n_fonts, n_writers),
        "italic": rng.random(n_writers) < 0.35,
        "thickness": rng.integers(2, 7, n_writers),
        "slant": u(-0.4, 0.4),
        "tilt": u(-7.0, 7.0),
        "x_scale": u(0.75, 1.35),
        "spacing": u(-0.15, 0.4),
        "size_a": u(0.8, 1.2),
        "size_n": u(0.8, 1.2),
        "size_d": u(0.8, 1.2),
        "rise_a": u(-0.12, 0.12),
        "rise_n": u(-0.12, 0.12),
        "rise_d": u(-0.12, 0.12),
        "join": rng.random(n_writers) < 0.5,
        "exit_stroke": rng.random(n_writers) < 0.4,
        "ink": u(0.7, 1.0),
    }


def _elastic(image: np.ndarray, coarse: np.ndarray) -> np.ndarray:
    """Elastic jitter: warp ``image`` by a smooth displacement field, the (2, 4, 4) ``coarse`` grid of pixel
    offsets upsampled bicubically to the image size."""
    h, w = image.shape
    field = cv2.resize(np.ascontiguousarray(coarse.transpose(1, 2, 0)), (w, h), interpolation=cv2.INTER_CUBIC)
    grid_x, grid_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(image, grid_x + field[..., 0], grid_y + field[..., 1], cv2.INTER_LINEAR)


def _render_word(style: dict[str, float], jit: dict[str, float]) -> np.ndarray:
    """Draw one "and" on the canvas and warp it: returns the uint8 ink mask (canvas size), 255 = ink."""
    canvas = np.zeros((_CANVAS_H, _CANVAS_W), np.uint8)
    thickness = int(max(1, style["thickness"] + jit["thickness"]))
    x = 40.0
    baseline = _CANVAS_H * 0.68
    ends: list[tuple[int, int]] = []
    starts: list[tuple[int, int]] = []
    for i, letter in enumerate("and"):
        font = FONTS[int(style[f"font_{letter}"])] | (cv2.FONT_ITALIC if style["italic"] else 0)
        scale = _FONT_SCALE * style[f"size_{letter}"]
        (w, h), _ = cv2.getTextSize(letter, font, scale, thickness)
        ox = x + jit[f"dx{i}"] * w
        oy = baseline - style[f"rise_{letter}"] * h + jit[f"dy{i}"] * h
        cv2.putText(canvas, letter, (int(round(ox)), int(round(oy))), font, scale, 255, thickness, cv2.LINE_AA)
        starts.append((int(round(ox)), int(round(oy - 0.35 * h))))
        ends.append((int(round(ox + w)), int(round(oy - 0.05 * h))))
        x = ox + w * (1.0 + style["spacing"])
    if style["join"]:
        for (ex, ey), (sx, sy) in zip(ends[:-1], starts[1:]):
            cv2.line(canvas, (ex - 3, ey), (sx + 2, sy), 255, max(1, thickness - 1), cv2.LINE_AA)
    if style["exit_stroke"]:
        ex, ey = ends[-1]
        cv2.line(canvas, (ex - 2, ey), (ex + 14, ey - 16), 255, max(1, thickness - 1), cv2.LINE_AA)

    # Writer geometry (x-scale, slant, baseline tilt) composed with the per-sample affine jitter.
    cx, cy = _CANVAS_W / 2, _CANVAS_H / 2
    scale_x = style["x_scale"] * (1 + jit["scale"])
    scale_y = 1 + jit["scale"]
    shear = -(style["slant"] + jit["slant"])
    theta = np.deg2rad(style["tilt"] + jit["rotation"])
    rot = np.array([[np.cos(theta), np.sin(theta)], [-np.sin(theta), np.cos(theta)]])
    lin = rot @ np.array([[1.0, shear], [0.0, 1.0]]) @ np.diag([scale_x, scale_y])
    matrix = np.hstack([lin, (np.array([cx, cy]) - lin @ np.array([cx, cy]))[:, None]]).astype(np.float32)
    return cv2.warpAffine(canvas, matrix, (_CANVAS_W, _CANVAS_H), flags=cv2.INTER_LINEAR)


def _crop_resize(mask: np.ndarray, size: int, margin: int = 4) -> np.ndarray:
    """Crop the canvas to the ink's bounding box (plus a margin) and squash it to ``size`` x ``size``."""
    points = cv2.findNonZero((mask > 32).astype(np.uint8))
    if points is None:
        return np.zeros((size, size), np.float32)
    x, y, w, h = cv2.boundingRect(points)
    y0, y1 = max(0, y - margin), min(mask.shape[0], y + h + margin)
    x0, x1 = max(0, x - margin), min(mask.shape[1], x + w + margin)
    crop = mask[y0:y1, x0:x1].astype(np.float32) / 255.0
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)


def handwriting_and(n_writers: int = 300, samples_per_writer: int = 6, *, size: int = 64, seed: int = 0,
                    jitter: float = 1.0) -> HandwritingSet:
    """Render ``samples_per_writer`` samples of "and" for each of ``n_writers`` synthetic writers.

    Args:
        n_writers: number of distinct writers (styles).
        samples_per_writer: samples per writer (CEDAR AND has about 3 pages x a few samples per writer).
        size: output side in pixels (the paper's ResNet input is 64).
        seed: everything (styles, jitter, noise) is a deterministic function of it.
        jitter: multiplies every within-writer variation (0 = the samples of a writer are identical up to
            noise; 1 = the default difficulty, which leaves a ResNet-18 verifier well below 100 %).

    Returns:
        a :class:`HandwritingSet`; samples ordered writer by writer.
    """
    if n_writers < 1 or samples_per_writer < 1:
        raise ValueError(f"need n_writers >= 1 and samples_per_writer >= 1, got {n_writers}, {samples_per_writer}")
    if size < 8:
        raise ValueError(f"size must be at least 8 pixels, got {size}")
    if jitter < 0:
        raise ValueError(f"jitter must be >= 0, got {jitter}")
    rng = np.random.default_rng(seed)
    styles = sample_writer_styles(n_writers, rng)
    n = n_writers * samples_per_writer
    writer_ids = np.repeat(np.arange(n_writers, dtype=np.int64), samples_per_writer)
    sample_ids = np.tile(np.arange(1, samples_per_writer + 1, dtype=np.int64), n_writers)

    # Per-sample jitter, drawn for all samples at once.
    j = jitter
    jit = {
        "thickness": np.rint(rng.uniform(-1, 1, n) * j).astype(int),
        "slant": rng.uniform(-0.07, 0.07, n) * j,
        "rotation": rng.uniform(-2.5, 2.5, n) * j,
        "scale": rng.uniform(-0.06, 0.06, n) * j,
        **{f"dx{i}": rng.uniform(-0.06, 0.06, n) * j for i in range(3)},
        **{f"dy{i}": rng.uniform(-0.05, 0.05, n) * j for i in range(3)},
    }
    ink = np.clip(styles["ink"][writer_ids] + rng.uniform(-0.08, 0.08, n) * j, 0.6, 1.0).astype(np.float32)
    blur = rng.uniform(0.0, 0.9, n) * j
    fields = (rng.standard_normal((n, 2, 4, 4)) * 1.2 * j * size / 64).astype(np.float32)

    images = np.empty((n, size, size), np.float32)
    for k in range(n):
        w = writer_ids[k]
        style = {key: styles[key][w] for key in STYLE_KEYS}
        mask = _crop_resize(_render_word(style, {key: v[k] for key, v in jit.items()}), size)
        if j > 0:
            mask = _elastic(mask, fields[k])
        if blur[k] > 0.05:
            mask = cv2.GaussianBlur(mask, (0, 0), float(blur[k]))
        images[k] = mask
    noise = rng.normal(0.0, 0.03, images.shape).astype(np.float32)
    images = np.clip(1.0 - ink[:, None, None] * images + noise, 0.0, 1.0)
    names = [f"{w + 1:04d}a_num{s}" for w, s in zip(writer_ids.tolist(), sample_ids.tolist())]
    return HandwritingSet(images=images, writer_ids=writer_ids, sample_ids=sample_ids, names=names, styles=styles)
