"""Procedural stroke glyphs: a class-rich, Omniglot-like source of few-shot image classification tasks.

Each *class* is a fixed random stroke program: 2..``max_strokes`` quadratic Bezier strokes whose three
control points are drawn once, from the alphabet's seed, in the unit square. Each *sample* of a class
re-draws the program as a person would re-write a character: every control point is jittered, the glyph
gets a small random rotation, scale and shift, and a random pen thickness. Strokes are drawn anti-aliased
with OpenCV on a supersampled canvas, so images are grayscale, ink = 1 on background = 0, like Omniglot
after inversion.

Schema of :meth:`GlyphAlphabet.sample` (``B`` samples)::

    images          float32 (B, size, size) in [0, 1]
    labels          int64   (B,)             the class ids asked for
    control_points  float32 (B, max_strokes, 3, 2)  the jittered, transformed control points (x, y) in [0, 1]
    stroke_mask     bool    (B, max_strokes)        which strokes the class uses

Everything is deterministic given the alphabet's ``seed`` and the ``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

import cv2
import numpy as np

_CURVE_POINTS = 10  # points per Bezier stroke in the polyline approximation


class GlyphAlphabet:
    """A fixed set of ``n_classes`` random stroke programs.

    Args:
        n_classes: number of classes (Omniglot has 1,623 characters).
        seed: seed of the programs; the same seed always gives the same classes.
        max_strokes: most strokes a class uses (each class draws 2..max_strokes; 1 if max_strokes = 1).
        margin: control points lie in ``[margin, 1 - margin]^2``.
    """

    def __init__(self, n_classes: int = 1000, seed: int = 0, max_strokes: int = 4, margin: float = 0.18):
        if n_classes < 1 or max_strokes < 1:
            raise ValueError(f"n_classes and max_strokes must be >= 1, got {n_classes}, {max_strokes}")
        rng = np.random.default_rng(seed)
        self.n_classes, self.max_strokes = n_classes, max_strokes
        self.programs = rng.uniform(margin, 1.0 - margin, size=(n_classes, max_strokes, 3, 2)).astype(np.float32)
        n_strokes = rng.integers(min(2, max_strokes), max_strokes + 1, size=n_classes)
        self.stroke_mask = np.arange(max_strokes)[None, :] < n_strokes[:, None]

    def __len__(self) -> int:
        return self.n_classes

    def sample(self, class_ids, rng: np.random.Generator, *, size: int = 28, jitter: float = 0.025,
               max_rotation_deg: float = 10.0, scale_range: tuple[float, float] = (0.9, 1.1),
               max_shift: float = 0.06, thickness_range: tuple[float, float] = (0.035, 0.06)) -> dict[str, np.ndarray]:
        """Render one jittered sample of each class in ``class_ids`` (see the module docstring for the schema)."""
        labels = np.asarray(class_ids, dtype=np.int64).reshape(-1)
        if labels.size and (labels.min() < 0 or labels.max() >= self.n_classes):
            raise ValueError(f"class ids must lie in [0, {self.n_classes}), got range "
                             f"[{labels.min()}, {labels.max()}]")
        if size < 4:
            raise ValueError(f"size must be >= 4 pixels, got {size}")
        b = labels.size
        points = self.programs[labels] + rng.normal(0.0, jitter, size=(b, self.max_strokes, 3, 2))
        angle = np.deg2rad(rng.uniform(-max_rotation_deg, max_rotation_deg, size=b))
        scale = rng.uniform(*scale_range, size=b)
        shift = rng.uniform(-max_shift, max_shift, size=(b, 2))
        cos, sin = np.cos(angle) * scale, np.sin(angle) * scale
        affine = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)  # (b, 2, 2)
        points = np.einsum("bij,bsqj->bsqi", affine, points - 0.5) + 0.5 + shift[:, None, None, :]
        thickness = rng.uniform(*thickness_range, size=b)
        mask = self.stroke_mask[labels]
        images = render_strokes(points, mask, thickness, size)
        return {"images": images, "labels": labels, "control_points": points.astype(np.float32),
                "stroke_mask": mask}


def render_strokes(control_points: np.ndarray, stroke_mask: np.ndarray, thickness: np.ndarray,
                   size: int, supersample: int = 4) -> np.ndarray:
    """Anti-aliased rendering of quadratic Bezier strokes with OpenCV.

    Each stroke is evaluated at a few points (vectorised), drawn as a round-capped polyline of width
    ``2 * thickness`` on a ``supersample``-times larger canvas and area-averaged down to ``size``.

    Args:
        control_points: (B, S, 3, 2) control points (x, y) in unit coordinates.
        stroke_mask: (B, S) bool, strokes to draw.
        thickness: (B,) pen half-width in unit coordinates.
        size: output height = width in pixels.

    Returns:
        float32 (B, size, size) in [0, 1], ink = 1.
    """
    t = np.linspace(0.0, 1.0, _CURVE_POINTS)[:, None]
    p0, p1, p2 = (control_points[:, :, None, i, :] for i in range(3))
    curve = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2  # (B, S, T, 2)
    big = size * supersample
    shift = 4  # cv2 sub-pixel bits
    pixels = np.round(curve * big * (1 << shift)).astype(np.int32)
    widths = np.maximum(1, np.round(2 * np.asarray(thickness) * big)).astype(int)
    out = np.empty((len(curve), size, size), dtype=np.float32)
    for i in range(len(curve)):  # one cv2 call per image; the geometry above is vectorised
        canvas = np.zeros((big, big), dtype=np.uint8)
        strokes = [pixels[i, s] for s in np.flatnonzero(stroke_mask[i])]
        cv2.polylines(canvas, strokes, False, 255, int(widths[i]), cv2.LINE_AA, shift)
        out[i] = cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA)
    return out / 255.0
