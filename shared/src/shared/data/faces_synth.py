"""Procedural faces with exact landmarks and region masks, and the deepfake manipulations built on them.

Offline stand-in for face-forensics training data (FF++-like), shared by ``x2dfd`` and ``sjedd``. Everything is
seeded and deterministic; rendering is vectorised over a batch in numpy, manipulations use OpenCV per sample.

Faces
-----
A face lives in a normalised frame ``(u, v)`` (``u`` right, ``v`` down, face half-width ~0.8) mapped to pixels by a
pose (centre, scale, in-plane rotation). Shapes (face ellipse, eyes, irises, brows, nose, lips, mouth opening, hair,
neck) are analytic, so the 81 landmarks (iBUG-68 order plus 13 forehead points 68-80, left to right) lie exactly on
the rendered outlines, and the region masks are exact. Three **families** (generator styles):

* ``"toon"``   -- flat colours, mild pixel noise;
* ``"shaded"`` -- directional lighting, edge darkening, low-frequency skin texture, other proportions and palette;
* ``"lfw"``    -- the 100 real LFW crops of :func:`shared.data.faces` (grayscale, upscaled). Their landmarks and
  region masks come from a fixed template fitted to the mean LFW crop (``record["landmarks_exact"] = False``).

An **identity** is (family, integer id): its geometry and colours are a pure function of ``(seed, family, id)``.
An **expression** (eye openness, mouth opening, smile, brow raise) and a **pose** are drawn per video and jittered
per frame, so a short **video** is a few jittered frames of one identity (``record["video"]`` groups frames).

Manipulations (``record["manipulation"]``; label 1 = fake)
-----------------------------------------------------------
* ``"real"``       -- the untouched frame (mask all zeros).
* ``"sbi"``        -- Self-Blended Image (Shiohara & Yamasaki 2022; ``specs/sbi.md``): landmark hull mask (4 Face
  X-ray hull types or the 68-point subset), source/target colour + frequency transform, affine on source and mask,
  elastic on the mask, ``get_blend_mask`` (resize to [192, 256]^2, blur, core, blur, ratio) and
  ``I = m * source + (1 - m) * target``.
* ``"id"``         -- identity swap: the inner face of another identity of the same family, rendered at the same
  pose and expression, colour-matched and blended in (DeepFakes/FaceSwap analogue).
* ``"expr_mouth"`` -- expression/mouth warp: a smooth local displacement field (open, stretch, smile) around the
  mouth, resampled with bilinear interpolation (Face2Face/NeuralTextures analogue).
* ``"phys_eyes"``, ``"phy_nose"``, ``"phy_mouth"`` -- local blends of one region (eyes+brows, nose, mouth+lips)
  from a transformed copy of the same face (``"self"``) or from another identity (``"cross"``), chosen with p=0.5.

The names are those of SJEDD's ``label_map_soff`` (``id``, ``expr_mouth``, ``phys_eyes``, ``phy_nose``,
``phy_mouth``) plus ``sbi`` and ``real``. See :data:`MANIPULATIONS`, :data:`MANIPULATION_REGIONS`.

API
---
``make_dataset(n_videos, frames_per_video=4, manipulations=("real", "sbi"), families=("toon",), size=64, seed=0,
identities=None) -> FaceBatch``
    Video ``v`` gets manipulation ``manipulations[v % len(manipulations)]`` (repeat a name to weight it), family
    ``families[v % len(families)]`` (cycled after the manipulations) and an identity from ``identities`` (default
    ``range(40)``; the ``lfw`` family uses its 100 crops).
``render_faces(n, family="toon", size=64, seed=0, identities=None) -> FaceBatch``
    Real frames only, one per identity.
``self_blend(image, landmarks, rng) -> (target, fake, mask, params)``
    SBI on one uint8 image; ``fake == target`` wherever ``mask == 0``.
``get_blend_mask``, ``dynamic_blend``, ``hull_mask``, ``source_transform``, ``rand_affine``, ``elastic_mask``
    The SBI steps, one function each.

:class:`FaceBatch` fields: ``images`` uint8 (N, S, S, 3) RGB; ``masks`` float32 (N, S, S) in [0, 1] (blend /
manipulation mask, zeros for real); ``landmarks`` float32 (N, 81, 2) as (x, y) pixels; ``regions`` dict
``{"eyes", "brows", "nose", "mouth", "lips", "skin"} -> bool (N, S, S)`` (``mouth`` = the whole mouth: lips plus
opening; ``skin`` = face minus the other regions and hair); ``records`` list of dicts with keys ``manipulation``,
``label``, ``regions`` (tuple of touched regions), ``identity``, ``family``, ``video``, ``frame``, ``donor``
(identity or None), ``landmarks_exact``, ``params``. ``batch[i]`` returns one sample as a dict with the same keys
(singular: ``image``, ``mask``, ``landmarks``, ``regions``, ``record``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

FAMILIES: tuple[str, ...] = ("toon", "shaded", "lfw")
MANIPULATIONS: tuple[str, ...] = ("real", "sbi", "id", "expr_mouth", "phys_eyes", "phy_nose", "phy_mouth")
REGION_NAMES: tuple[str, ...] = ("eyes", "brows", "nose", "mouth", "lips", "skin")
MANIPULATION_REGIONS: dict[str, tuple[str, ...]] = {
    "real": (),
    "sbi": ("skin", "eyes", "brows", "nose", "mouth", "lips"),
    "id": ("skin", "eyes", "brows", "nose", "mouth", "lips"),
    "expr_mouth": ("mouth", "lips"),
    "phys_eyes": ("eyes", "brows"),
    "phy_nose": ("nose",),
    "phy_mouth": ("mouth", "lips"),
}
"""The face regions each manipulation touches (recorded per sample in ``record["regions"]``)."""
N_LANDMARKS = 81

# ----------------------------------------------------------------------------------------------------------------
# identities, expressions, poses


def _identity_params(family: str, ids: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """Geometry and colours of each identity: a pure function of (seed, family, id)."""
    fam = FAMILIES.index(family)
    rows = [np.random.default_rng([seed, 7919, fam, int(i)]).random(24) for i in ids]
    r = np.stack(rows) if rows else np.zeros((0, 24))
    lo_hi = lambda k, lo, hi: lo + (hi - lo) * r[:, k]  # noqa: E731
    shaded = family == "shaded"
    p = {
        "a": lo_hi(0, 0.70, 0.84) if not shaded else lo_hi(0, 0.64, 0.76),
        "b": lo_hi(1, 0.95, 1.08) if not shaded else lo_hi(1, 1.02, 1.15),
        "eye_x": lo_hi(2, 0.28, 0.35),
        "eye_y": lo_hi(3, -0.20, -0.10),
        "eye_w": lo_hi(4, 0.11, 0.16),
        "eye_h": lo_hi(5, 0.05, 0.075),
        "brow_gap": lo_hi(6, 0.10, 0.15),
        "brow_w": lo_hi(7, 0.14, 0.19),
        "brow_t": lo_hi(8, 0.022, 0.04),
        "nose_y": lo_hi(9, 0.18, 0.28) if not shaded else lo_hi(9, 0.26, 0.36),
        "nose_w": lo_hi(10, 0.07, 0.12) if not shaded else lo_hi(10, 0.10, 0.15),
        "mouth_y": lo_hi(11, 0.46, 0.56) if not shaded else lo_hi(11, 0.56, 0.66),
        "mouth_w": lo_hi(12, 0.20, 0.30),
        "lip_h": lo_hi(13, 0.045, 0.07),
        "hairline": lo_hi(14, -0.62, -0.42),
    }
    # colours (RGB in [0, 1]); the shaded family uses a darker, warmer palette
    tone = r[:, 15]
    light = np.array([0.96, 0.80, 0.68]) if not shaded else np.array([0.86, 0.66, 0.50])
    dark = np.array([0.55, 0.38, 0.26]) if not shaded else np.array([0.42, 0.27, 0.17])
    p["skin"] = light[None] * (1 - tone[:, None]) + dark[None] * tone[:, None]
    p["hair"] = np.stack([lo_hi(16, 0.05, 0.55), lo_hi(16, 0.03, 0.40), lo_hi(17, 0.02, 0.25)], 1)
    p["iris"] = np.stack([lo_hi(18, 0.1, 0.5), lo_hi(19, 0.15, 0.55), lo_hi(20, 0.1, 0.6)], 1)
    p["lip"] = p["skin"] * np.array([0.95, 0.55, 0.55]) + np.array([0.05, 0.0, 0.02])
    p["bg"] = np.stack([lo_hi(21, 0.1, 0.9), lo_hi(22, 0.1, 0.9), lo_hi(23, 0.1, 0.9)], 1)
    return p


def _expressions(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    return {
        "eye_open": rng.uniform(0.6, 1.1, n),
        "mouth_open": np.where(rng.random(n) < 0.5, 0.0, rng.uniform(0.1, 1.0, n)),
        "smile": rng.uniform(-0.4, 1.0, n),
        "brow_raise": rng.uniform(0.0, 0.05, n),
    }


def _poses(rng: np.random.Generator, n: int, size: int) -> dict[str, np.ndarray]:
    return {
        "cx": size * (0.5 + rng.uniform(-0.04, 0.04, n)),
        "cy": size * (0.52 + rng.uniform(-0.04, 0.04, n)),
        "scale": size * 0.36 * rng.uniform(0.93, 1.05, n),
        "angle": np.deg2rad(rng.uniform(-8, 8, n)),
    }


def _jitter(d: dict[str, np.ndarray], rng: np.random.Generator, amount: dict[str, float]) -> dict[str, np.ndarray]:
    return {k: v + (rng.normal(0, amount[k], v.shape) if k in amount else 0) for k, v in d.items()}


# ----------------------------------------------------------------------------------------------------------------
# landmarks (face frame) and rendering


def _face_landmarks(p: dict[str, np.ndarray], e: dict[str, np.ndarray]) -> np.ndarray:
    """81 landmarks (N, 81, 2) in the face frame (u, v), iBUG-68 order plus 13 forehead points."""
    n = len(p["a"])
    col = lambda x: np.asarray(x, dtype=np.float64).reshape(n, 1)  # noqa: E731
    a, b = col(p["a"]), col(p["b"])
    pts = np.zeros((n, N_LANDMARKS, 2))
    phi = np.linspace(np.pi + 0.25, -0.25, 17)[None]  # jaw 0-16, left ear level -> chin -> right
    pts[:, 0:17] = np.stack([a * np.cos(phi), b * np.sin(phi)], -1)
    ex, ey, ew, eh = col(p["eye_x"]), col(p["eye_y"]), col(p["eye_w"]), col(p["eye_h"]) * col(e["eye_open"])
    by = ey - col(p["brow_gap"]) - col(e["brow_raise"])
    bw, bt = col(p["brow_w"]), col(p["brow_t"])
    s = np.linspace(-0.9, 0.9, 5)[None]
    for k, c in ((17, -ex), (22, ex)):  # brows: upper outline, left to right
        pts[:, k : k + 5] = np.stack([c + bw * s, by - bt * np.sqrt(1 - s**2)], -1)
    ntop, ny, nw = ey + 0.04, col(p["nose_y"]), col(p["nose_w"])
    pts[:, 27:31] = np.stack([np.zeros((n, 4)), ntop + (ny - ntop) * np.linspace(0, 1, 4)[None]], -1)
    base_u, base_v = np.array([-1, -0.5, 0, 0.5, 1])[None], np.array([0, 0.6, 1, 0.6, 0])[None]
    pts[:, 31:36] = np.stack([nw * base_u, ny + 0.04 * base_v], -1)
    t_eye = np.array([np.pi, 2 * np.pi / 3, np.pi / 3, 0, -np.pi / 3, -2 * np.pi / 3])[None]
    for k, c in ((36, -ex), (42, ex)):  # eyes: corner, upper lid, corner, lower lid
        pts[:, k : k + 6] = np.stack([c + ew * np.cos(t_eye), ey - eh * np.sin(t_eye)], -1)
    mw, lh, op, my, smile = col(p["mouth_w"]), col(p["lip_h"]), col(e["mouth_open"]), col(p["mouth_y"]), col(e["smile"])
    curve = lambda u: my - 0.06 * smile * (u / mw) ** 2  # noqa: E731  (mouth centre line, corners lifted by smile)
    t_out = np.concatenate([[np.pi], np.arange(5, -6, -1) * np.pi / 6])[None]  # 48 corner, upper lip, 54, lower
    u = mw * np.cos(t_out)
    pts[:, 48:60] = np.stack([u, curve(u) - (lh + 0.5 * op * lh) * np.sin(t_out)], -1)
    t_in = np.array([4, 3, 2, 1, 0, -1, -2, -3])[None] * np.pi / 4  # 60 corner, upper inner, 64, lower inner
    u = 0.8 * mw * np.cos(t_in)
    pts[:, 60:68] = np.stack([u, curve(u) - 0.9 * op * lh * np.sin(t_in)], -1)
    phi = np.linspace(np.pi + 0.35, 2 * np.pi - 0.35, 13)[None]  # forehead 68-80, left to right, at the hairline
    pts[:, 68:81] = np.stack([a * np.cos(phi), np.maximum(b * np.sin(phi), col(p["hairline"]))], -1)
    return pts


def _to_pixels(pts: np.ndarray, pose: dict[str, np.ndarray]) -> np.ndarray:
    c, s = np.cos(pose["angle"])[:, None], np.sin(pose["angle"])[:, None]
    sc = pose["scale"][:, None]
    u, v = pts[..., 0], pts[..., 1]
    x = pose["cx"][:, None] + sc * (u * c - v * s)
    y = pose["cy"][:, None] + sc * (u * s + v * c)
    return np.stack([x, y], -1)


def _render(p: dict[str, np.ndarray], e: dict[str, np.ndarray], pose: dict[str, np.ndarray], size: int,
            shaded: bool, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """Vectorised renderer: (N, S, S, 3) uint8 images, region masks, landmarks (N, 81, 2) in pixels."""
    n = len(p["a"])
    P = {k: (v.reshape(n, 1, 1) if v.ndim == 1 else v.reshape(n, 1, 1, -1)) for k, v in p.items()}
    E = {k: v.reshape(n, 1, 1) for k, v in e.items()}
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    cx, cy = pose["cx"].reshape(n, 1, 1), pose["cy"].reshape(n, 1, 1)
    c, s = np.cos(pose["angle"]).reshape(n, 1, 1), np.sin(pose["angle"]).reshape(n, 1, 1)
    sc = pose["scale"].reshape(n, 1, 1)
    dx, dy = xs[None] - cx, ys[None] - cy
    u, v = (dx * c + dy * s) / sc, (-dx * s + dy * c) / sc
    r_face = (u / P["a"]) ** 2 + (v / P["b"]) ** 2
    face = r_face <= 1
    hair = ((u / (P["a"] * 1.1)) ** 2 + ((v + 0.06) / (P["b"] * 1.12)) ** 2 <= 1) & (v < P["hairline"])
    neck = (np.abs(u) < 0.42 * P["a"]) & (v > 0.5 * P["b"])
    ew, eh = P["eye_w"], P["eye_h"] * E["eye_open"]
    eye_l = ((u + P["eye_x"]) / ew) ** 2 + ((v - P["eye_y"]) / eh) ** 2 <= 1
    eye_r = ((u - P["eye_x"]) / ew) ** 2 + ((v - P["eye_y"]) / eh) ** 2 <= 1
    eyes = eye_l | eye_r
    ir = 0.55 * eh
    d_eye = np.minimum(np.abs(u + P["eye_x"]), np.abs(u - P["eye_x"])) ** 2 + (v - P["eye_y"]) ** 2
    iris = (d_eye <= ir**2) & eyes
    pupil = (d_eye <= (0.45 * ir) ** 2) & eyes
    by = P["eye_y"] - P["brow_gap"] - E["brow_raise"]
    brows = (((np.abs(u) - P["eye_x"]) / P["brow_w"]) ** 2 + ((v - by) / P["brow_t"]) ** 2 <= 1)
    ntop, ny, nw = P["eye_y"] + 0.04, P["nose_y"], P["nose_w"]
    frac = np.clip((v - ntop) / (ny - ntop), 0, None)
    bridge = (v >= ntop) & (v <= ny) & (np.abs(u) <= nw * frac)
    nose = bridge | (((u / nw) ** 2 + ((v - ny) / 0.04) ** 2 <= 1) & (v >= ny))
    nostril = ((np.abs(u) - 0.5 * nw) / (0.3 * nw)) ** 2 + ((v - ny - 0.012) / 0.018) ** 2 <= 1
    mw, lh, op = P["mouth_w"], P["lip_h"], E["mouth_open"]
    dv = v - (P["mouth_y"] - 0.06 * E["smile"] * (u / mw) ** 2)
    outer_h = lh + 0.5 * op * lh
    mouth = (u / mw) ** 2 + (dv / outer_h) ** 2 <= 1
    opening = ((u / (0.8 * mw)) ** 2 + (dv / np.maximum(0.9 * op * lh, 1e-6)) ** 2 <= 1) & (op > 0.05)
    lips = mouth & ~opening
    # paint back to front (boolean-indexed layers; colours per face, shading per pixel)
    img = np.empty((n, size, size, 3), np.float32)
    img[:] = (p["bg"].reshape(n, 1, 1, 3) * (0.75 + 0.35 * ys[None, :, :, None] / size)).astype(np.float32)
    if shaded:
        light = rng.normal(0, 1, (n, 2))
        light /= np.linalg.norm(light, axis=1, keepdims=True) + 1e-9
        lu, lv = light[:, 0].reshape(n, 1, 1), light[:, 1].reshape(n, 1, 1)
        shade = (1 + 0.22 * (lu * u + lv * v)) * (1 - 0.28 * np.clip(r_face, 0, 1) ** 3)
        tex = rng.normal(0, 1, (n, 6, 6)).astype(np.float32)
        tex = np.stack([cv2.resize(t_, (size, size), interpolation=cv2.INTER_CUBIC) for t_ in tex]) if n else tex
        shade = (shade * (1 + 0.05 * tex)).astype(np.float32)
    else:
        shade = np.ones((n, size, size), np.float32)

    def paint(where: np.ndarray, colour: np.ndarray, gain: float = 1.0, shaded_layer: bool = True) -> None:
        face_idx = np.nonzero(where)[0]
        col = colour[face_idx] if colour.ndim == 2 else np.broadcast_to(colour, (len(face_idx), 3))
        g = gain * (shade[where][:, None] if shaded_layer else 1.0)
        img[where] = col * g

    paint(neck, p["skin"], 0.85)
    paint(face, p["skin"])
    paint(nose & ~nostril, p["skin"], 0.92 if not shaded else 0.86)
    paint(nostril & face, p["skin"], 0.45)
    paint(hair, p["hair"], shaded_layer=shaded)
    paint(brows, p["hair"], 0.8, shaded_layer=False)
    paint(eyes, np.array([0.95, 0.95, 0.93]), shaded_layer=False)
    paint(iris, p["iris"], shaded_layer=False)
    paint(pupil, np.array([0.05, 0.05, 0.05]), shaded_layer=False)
    paint(lips, p["lip"], shaded_layer=shaded)
    paint(opening, np.array([0.25, 0.05, 0.07]), shaded_layer=False)
    img = img * 255 + rng.normal(0, 3.0 if not shaded else 2.0, img.shape).astype(np.float32)
    images = np.clip(img, 0, 255).astype(np.uint8)
    inner = eyes | brows | nose | mouth
    regions = {
        "eyes": eyes, "brows": brows & ~hair, "nose": nose, "mouth": mouth, "lips": lips,
        "skin": face & ~inner & ~hair,
    }
    landmarks = _to_pixels(_face_landmarks(p, e), pose).astype(np.float32)
    return images, regions, landmarks


# ----------------------------------------------------------------------------------------------------------------
# the real LFW family (template landmarks)

_LFW_TEMPLATE = {  # fitted by eye to the mean lfw_subset crop: eyes at (6.5, 8) and (15, 8), mouth row ~18.5 of 25
    "a": 0.78, "b": 1.02, "eye_x": 0.32, "eye_y": -0.15, "eye_w": 0.14, "eye_h": 0.06, "brow_gap": 0.12,
    "brow_w": 0.17, "brow_t": 0.03, "nose_y": 0.32, "nose_w": 0.11, "mouth_y": 0.62, "mouth_w": 0.26,
    "lip_h": 0.055, "hairline": -0.7,
}
_NEUTRAL = {"eye_open": 1.0, "mouth_open": 0.0, "smile": 0.0, "brow_raise": 0.0}


def _lfw_frames(ids: np.ndarray, pose_jit: dict[str, np.ndarray], size: int, rng: np.random.Generator):
    """LFW crops (grayscale -> RGB), upscaled and jittered by a similarity transform; template landmarks."""
    from shared.data.offline import faces

    crops = faces(include_astronaut=False)
    n = len(ids)
    p = {k: np.full(n, v, dtype=np.float64) for k, v in _LFW_TEMPLATE.items()}
    p.update({k: np.full((n, 3), 0.5) for k in ("skin", "hair", "iris", "lip", "bg")})  # unused colours
    e = {k: np.full(n, v, dtype=np.float64) for k, v in _NEUTRAL.items()}
    base = {"cx": np.full(n, size * 10.8 / 25), "cy": np.full(n, size * 10.0 / 25), "scale": np.full(n, size * 0.53),
            "angle": np.zeros(n)}
    images = np.empty((n, size, size, 3), np.uint8)
    pose = {"cx": np.empty(n), "cy": np.empty(n), "scale": np.empty(n), "angle": np.empty(n)}
    for i, idx in enumerate(ids):
        crop = cv2.resize(crops[int(idx) % len(crops)], (size, size), interpolation=cv2.INTER_CUBIC)
        crop = np.clip(crop * 255 + rng.normal(0, 2.0, crop.shape), 0, 255).astype(np.float32)
        zoom, ang = pose_jit["zoom"][i], pose_jit["angle"][i]
        shift = np.array([pose_jit["tx"][i], pose_jit["ty"][i]]) * size
        m = cv2.getRotationMatrix2D((base["cx"][i], base["cy"][i]), np.rad2deg(-ang), zoom)
        m[:, 2] += shift
        warped = cv2.warpAffine(crop, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        images[i] = np.repeat(np.clip(warped, 0, 255).astype(np.uint8)[..., None], 3, axis=2)
        pose["cx"][i], pose["cy"][i] = base["cx"][i] + shift[0], base["cy"][i] + shift[1]
        pose["scale"][i], pose["angle"][i] = base["scale"][i] * zoom, ang
    # regions and landmarks of the template at the same similarity transform (render gives exact template shapes)
    _, regions, landmarks = _render(p, e, pose, size, shaded=False, rng=np.random.default_rng(0))
    return images, regions, landmarks, p, e, pose


# ----------------------------------------------------------------------------------------------------------------
# the batch container


@dataclass
class FaceBatch:
    """A batch of face frames with their ground truth (see the module docstring for the schema)."""

    images: np.ndarray
    masks: np.ndarray
    landmarks: np.ndarray
    regions: dict[str, np.ndarray]
    records: list[dict] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict:
        return {"image": self.images[i], "mask": self.masks[i], "landmarks": self.landmarks[i],
                "regions": {k: v[i] for k, v in self.regions.items()}, "record": self.records[i]}

    @property
    def labels(self) -> np.ndarray:
        """int64 (N,): 0 real, 1 fake."""
        return np.array([r["label"] for r in self.records], dtype=np.int64)

    @property
    def videos(self) -> np.ndarray:
        """int64 (N,): the video id of each frame."""
        return np.array([r["video"] for r in self.records], dtype=np.int64)

    def select(self, index) -> FaceBatch:
        index = np.asarray(index)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        return FaceBatch(self.images[index], self.masks[index], self.landmarks[index],
                         {k: v[index] for k, v in self.regions.items()}, [self.records[i] for i in index])

    @staticmethod
    def concat(batches: Sequence[FaceBatch]) -> FaceBatch:
        return FaceBatch(np.concatenate([b.images for b in batches]), np.concatenate([b.masks for b in batches]),
                         np.concatenate([b.landmarks for b in batches]),
                         {k: np.concatenate([b.regions[k] for b in batches]) for k in REGION_NAMES},
                         [r for b in batches for r in b.records])


# ----------------------------------------------------------------------------------------------------------------
# SBI (specs/sbi.md), one function per step


def _convex_fill(shape: tuple[int, int], *point_sets: np.ndarray) -> np.ndarray:
    mask = np.zeros(shape, np.float32)
    for pts in point_sets:
        hull = cv2.convexHull(np.round(pts).astype(np.int32))
        cv2.fillConvexPoly(mask, hull, 1.0)
    return mask


def hull_mask(landmarks: np.ndarray, shape: tuple[int, int], hull_type: int | None = None) -> np.ndarray:
    """Landmark hull mask (float32 0/1). ``hull_type``: 0 dfl_full, 1 extended, 2 components, 3 facehull
    (Face X-ray's ``random_get_hull``); ``None`` = the plain convex hull of all points (SBI's fallback)."""
    lm = np.asarray(landmarks, np.float64)
    if hull_type is None or hull_type == 3:
        return _convex_fill(shape, lm)
    if hull_type == 0:  # dfl_full: jaw + mouth, nose ridge, eyes + brows
        return _convex_fill(shape, np.concatenate([lm[0:17], lm[48:68]]), lm[27:36],
                            np.concatenate([lm[17:27], lm[36:48], lm[0:1], lm[16:17], lm[27:28], lm[33:34]]))
    if hull_type == 1:  # extended: brows pushed up by half the brow-eye distance
        lm = lm.copy()
        eye_y = np.concatenate([lm[36:42], lm[42:48]])[:, 1].mean()
        lm[17:27, 1] -= 0.5 * np.abs(eye_y - lm[17:27, 1])
        return _convex_fill(shape, lm[:68])
    if hull_type == 2:  # components
        return _convex_fill(
            shape, np.concatenate([lm[0:9], lm[17:18]]), np.concatenate([lm[8:17], lm[26:27]]),
            np.concatenate([lm[17:20], lm[8:9]]), np.concatenate([lm[24:27], lm[8:9]]),
            np.concatenate([lm[19:25], lm[8:9]]), np.concatenate([lm[17:22], lm[27:28], lm[31:36], lm[8:9]]),
            np.concatenate([lm[22:27], lm[27:28], lm[31:36], lm[8:9]]), np.concatenate([lm[27:31], lm[31:36]]))
    raise ValueError(f"hull_type must be 0, 1, 2, 3 or None, got {hull_type!r}")


def _hsv_shift(img: np.ndarray, dh: float, ds: float, dv: float) -> np.ndarray:
    """albumentations HueSaturationValue on uint8: shifts in OpenCV units (hue 0..180, sat/val 0..255)."""
    hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 0] = np.mod(hsv[..., 0] + dh, 180)
    hsv[..., 1:] = np.clip(hsv[..., 1:] + np.array([ds, dv]), 0, 255)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)


def source_transform(img: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """SBI ``source_transforms``: colour block (RGBShift +-20 p=0.3, HSV +-0.3 p=1, brightness/contrast +-0.1
    p=1), then OneOf(RandomDownScale x2/x4, Sharpen alpha [0.2, 0.5] lightness [0.5, 1.0]) with p=1."""
    info: dict = {}
    out = img.astype(np.float32)
    if rng.random() < 0.3:
        shift = rng.uniform(-20, 20, 3)
        out = out + shift
        info["rgb_shift"] = shift.round(2).tolist()
    out = _hsv_shift(np.clip(out, 0, 255).astype(np.uint8), *rng.uniform(-0.3, 0.3, 3)).astype(np.float32)
    alpha, beta = rng.uniform(-0.1, 0.1, 2)
    out = out * (1 + alpha) + beta * 255
    out = np.clip(out, 0, 255).astype(np.uint8)
    h, w = out.shape[:2]
    if rng.random() < 0.5:
        ratio = int(rng.choice([2, 4]))
        small = cv2.resize(out, (max(1, w // ratio), max(1, h // ratio)), interpolation=cv2.INTER_NEAREST)
        out = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
        info["freq"] = f"downscale{ratio}"
    else:
        a, light = rng.uniform(0.2, 0.5), rng.uniform(0.5, 1.0)
        nochange = np.zeros((3, 3), np.float32)
        nochange[1, 1] = 1
        effect = np.array([[-1, -1, -1], [-1, 8 + light, -1], [-1, -1, -1]], np.float32)
        out = cv2.filter2D(out, -1, (1 - a) * nochange + a * effect)
        info["freq"] = "sharpen"
    return out, info


def rand_affine(img: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, dict]:
    """SBI ``randaffine``, first half: Affine(translate x +-3 %, y +-1.5 %, scale [0.95, 1/0.95]) on image and mask."""
    h, w = mask.shape
    tx, ty = rng.uniform(-0.03, 0.03) * w, rng.uniform(-0.015, 0.015) * h
    scale = rng.uniform(0.95, 1 / 0.95)
    m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), 0.0, scale)
    m[:, 2] += (tx, ty)
    img = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    mask = cv2.warpAffine(mask, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    return img, mask, {"translate": [round(tx / w, 4), round(ty / h, 4)], "scale": round(scale, 4)}


ELASTIC_REFERENCE = 256
"""Side of the grid on which the elastic mask deformation is computed (SBI works on ~300-400 px crops)."""


def elastic_mask(mask: np.ndarray, rng: np.random.Generator, alpha: float = 50.0, sigma: float = 7.0) -> np.ndarray:
    """SBI ``randaffine``, second half: ElasticTransform(alpha=50, sigma=7) on the mask only.

    The displacement field is albumentations': uniform(-1, 1) noise smoothed by a Gaussian of std ``sigma`` and
    scaled by ``alpha``, in pixels of a ``ELASTIC_REFERENCE``-pixel grid (SBI works on ~300-400 px crops), then
    rescaled to the mask's size so the deformation relative to the face does not depend on the working size.
    For speed the noise is drawn on a 4x coarser grid (block averages: std / 4, sigma / 4) and upsampled."""
    h, w = mask.shape
    g = ELASTIC_REFERENCE // 4
    fields = []
    for _ in range(2):
        noise = (rng.random((g, g)) * 2 - 1).astype(np.float32)
        d = cv2.GaussianBlur(noise, (0, 0), sigma / 4) * (alpha / 4)  # reference-grid pixels
        fields.append(cv2.resize(d, (w, h), interpolation=cv2.INTER_LINEAR) * (w / ELASTIC_REFERENCE))
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    return cv2.remap(mask.astype(np.float32), gx + fields[0], gy + fields[1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_CONSTANT)


BLEND_RATIOS = (0.25, 0.5, 0.75, 1.0, 1.0, 1.0)


def get_blend_mask(mask: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """SBI ``get_blend_mask``: resize to (h, w) in [192, 256]^2, GaussianBlur k1 (odd, 5..25, sigma 0), normalise,
    zero everything < 1 (the fully-inside core), GaussianBlur k2 (odd, 5..25) with sigma in [5, 45], normalise,
    resize back. Returns the mask in [0, 1] (max 1 unless the core is empty) and the parameters."""
    h, w = mask.shape
    size_h, size_w = int(rng.integers(192, 257)), int(rng.integers(192, 257))
    k1, k2 = int(rng.choice(np.arange(5, 26, 2))), int(rng.choice(np.arange(5, 26, 2)))
    sigma = int(rng.integers(5, 46))
    m = cv2.resize(mask.astype(np.float32), (size_w, size_h))
    m = cv2.GaussianBlur(m, (k1, k1), 0)
    if m.max() > 0:
        m = m / m.max()
    m[m < 1] = 0
    m = cv2.GaussianBlur(m, (k2, k2), sigma)
    if m.max() > 0:
        m = m / m.max()
    m = cv2.resize(m, (w, h))
    return np.clip(m, 0, 1), {"k1": k1, "k2": k2, "sigma": sigma, "resize": [size_h, size_w]}


def dynamic_blend(source: np.ndarray, target: np.ndarray, mask: np.ndarray, rng: np.random.Generator):
    """SBI ``dynamic_blend``: ``m = r * get_blend_mask(mask)`` with r uniform over (0.25, 0.5, 0.75, 1, 1, 1),
    then ``I = m * source + (1 - m) * target``. Returns (blended uint8, m, params)."""
    m, info = get_blend_mask(mask, rng)
    ratio = BLEND_RATIOS[int(rng.integers(len(BLEND_RATIOS)))]
    m = (m * ratio).astype(np.float32)
    blended = m[..., None] * source.astype(np.float32) + (1 - m[..., None]) * target.astype(np.float32)
    return np.clip(np.round(blended), 0, 255).astype(np.uint8), m, {**info, "ratio": ratio}


def self_blend(image: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator):
    """SBI ``self_blending`` on one uint8 (H, W, 3) image with 81 landmarks.

    Returns ``(target, fake, mask, params)``: ``target`` is the real frame (transformed when the target side was
    drawn), ``fake = m * source + (1 - m) * target``, so ``fake == target`` wherever ``mask == 0``."""
    h, w = image.shape[:2]
    lm = landmarks[:68] if rng.random() < 0.25 else landmarks
    hull_type = int(rng.integers(4))
    mask = hull_mask(lm, (h, w), hull_type)
    source, target = image.copy(), image.copy()
    side = "source" if rng.random() < 0.5 else "target"
    if side == "source":
        source, tinfo = source_transform(source, rng)
    else:
        target, tinfo = source_transform(target, rng)
    source, mask, ainfo = rand_affine(source, mask, rng)
    mask = elastic_mask(mask, rng)
    fake, m, binfo = dynamic_blend(source, target, mask, rng)
    params = {"hull_type": hull_type, "n_landmarks": len(lm), "transformed": side, **tinfo, **ainfo, **binfo}
    return target, fake, m, params


# ----------------------------------------------------------------------------------------------------------------
# the other manipulations


def _soft_region(region: np.ndarray, rng: np.random.Generator, grow: float) -> np.ndarray:
    """A region mask dilated by r = ``grow`` * size pixels and feathered (Gaussian, kernel 4r + 1), in [0, 1]."""
    size = region.shape[0]
    r = max(1, int(round(grow * size)))
    m = cv2.dilate(region.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    sigma = rng.uniform(0.6, 1.6) * r
    m = cv2.GaussianBlur(m.astype(np.float32), (4 * r + 1, 4 * r + 1), sigma)  # support: region + 3r pixels
    return np.clip(m / max(m.max(), 1e-6), 0, 1).astype(np.float32)


def _color_match(src: np.ndarray, dst: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per-channel mean/std transfer of ``src`` to ``dst`` inside ``mask`` (FaceSwap-style colour correction)."""
    sel = mask > 0.5
    if sel.sum() < 4:
        return src
    s, d = src.astype(np.float32), dst.astype(np.float32)
    out = (s - s[sel].mean(0)) / (s[sel].std(0) + 1e-3) * d[sel].std(0) + d[sel].mean(0)
    return np.clip(out, 0, 255).astype(np.uint8)


def _blend(source: np.ndarray, target: np.ndarray, m: np.ndarray) -> np.ndarray:
    out = m[..., None] * source.astype(np.float32) + (1 - m[..., None]) * target.astype(np.float32)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def identity_swap(target: np.ndarray, donor: np.ndarray, target_lm: np.ndarray, rng: np.random.Generator):
    """Blend the donor's inner face (hull of landmarks 0-67, eroded, feathered) into ``target`` after colour
    matching; the donor is the other identity rendered at the target's pose and expression."""
    size = target.shape[0]
    hull = hull_mask(target_lm[:68], target.shape[:2])
    r = max(1, size // 24)
    hull = cv2.erode(hull, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    m = cv2.GaussianBlur(hull, (0, 0), rng.uniform(0.5, 1.5) * r)
    m = np.clip(m / max(m.max(), 1e-6), 0, 1).astype(np.float32)
    donor = _color_match(donor, target, hull)
    return _blend(donor, target, m), m


def mouth_warp(image: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator):
    """Expression/mouth warp: ``out(x) = in(x - d(x))`` with ``d = g(x) * (kx (x - c_x), ky (y - c_y) + ty -
    smile * ((x - c_x) / w)^2 * w)`` and a Gaussian window ``g`` on the mouth. Returns (image, mask=g, landmarks
    moved by d, params)."""
    size = image.shape[0]
    mouth = landmarks[48:60]
    c = mouth.mean(0)
    w = max(np.ptp(mouth[:, 0]) / 2, 1.0)
    sig = 1.3 * w
    kx, ky = rng.uniform(-0.35, 0.35), rng.uniform(0.2, 0.8) * rng.choice([-1, 1])
    ty, smile = rng.uniform(-0.06, 0.06) * w, rng.uniform(-0.25, 0.25)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)

    def disp(x, y):
        g = np.exp(-((x - c[0]) ** 2 + (y - c[1]) ** 2) / (2 * sig**2))
        return g, g * kx * (x - c[0]), g * (ky * (y - c[1]) * 0.5 + ty - smile * ((x - c[0]) / w) ** 2 * w)

    g, dx, dy = disp(xs, ys)
    out = cv2.remap(image, (xs - dx).astype(np.float32), (ys - dy).astype(np.float32), cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REFLECT_101)
    mask = np.where(g > 0.05, g, 0).astype(np.float32)
    lm = landmarks.astype(np.float64).copy()
    _, ddx, ddy = disp(lm[:, 0], lm[:, 1])
    _, ddx, ddy = disp(lm[:, 0] + ddx, lm[:, 1] + ddy)  # one fixed-point step of p' = p + d(p')
    lm[:, 0] += ddx
    lm[:, 1] += ddy
    return out, mask, lm.astype(np.float32), {"kx": round(kx, 3), "ky": round(float(ky), 3), "ty": round(ty, 3),
                                               "smile": round(smile, 3)}


_LOCAL_REGION = {"phys_eyes": ("eyes", "brows"), "phy_nose": ("nose",), "phy_mouth": ("mouth",)}


def local_blend(target: np.ndarray, regions: dict[str, np.ndarray], kind: str, donor: np.ndarray | None,
                rng: np.random.Generator):
    """Local blend of one region (``phys_eyes``: eyes + brows, ``phy_nose``: nose, ``phy_mouth``: mouth) from
    ``donor`` (cross) or, when ``donor`` is None, from a colour/frequency-transformed, slightly shifted copy of
    the face itself (self). The mask is the region dilated and feathered."""
    region = np.zeros(target.shape[:2], bool)
    for name in _LOCAL_REGION[kind]:
        region |= regions[name]
    m = _soft_region(region, rng, grow=0.04)
    if donor is None:
        src, info = source_transform(target, rng)
        src, _, ainfo = rand_affine(src, m, rng)
        info = {**info, **ainfo, "blend_source": "self"}
    else:
        src, info = _color_match(donor, target, region.astype(np.float32)), {"blend_source": "cross"}
    ratio = float(rng.choice([0.75, 1.0]))
    return _blend(src, target, m * ratio), (m * ratio).astype(np.float32), {**info, "ratio": ratio}


# ----------------------------------------------------------------------------------------------------------------
# datasets


def _render_family(family: str, ids: np.ndarray, e: dict, pose: dict, size: int, seed: int,
                   rng: np.random.Generator):
    p = _identity_params(family, ids, seed)
    images, regions, lm = _render(p, e, pose, size, shaded=family == "shaded", rng=rng)
    return images, regions, lm


def make_dataset(n_videos: int, frames_per_video: int = 4, manipulations: Sequence[str] = ("real", "sbi"),
                 families: Sequence[str] = ("toon",), size: int = 64, seed: int = 0,
                 identities: Sequence[int] | None = None, video_offset: int = 0) -> FaceBatch:
    """``n_videos`` short videos of ``frames_per_video`` jittered frames each (see the module docstring).

    Video ``v`` has manipulation ``manipulations[v % M]``, family ``families[(v // M) % F]`` and identity
    ``identities[rng]``; donors (``id``, cross local blends) are other identities of the same family.
    ``video_offset`` shifts the video ids (to keep ids unique across splits)."""
    bad = [m for m in manipulations if m not in MANIPULATIONS]
    if bad or not manipulations:
        raise ValueError(f"unknown manipulation(s) {bad}; expected some of {list(MANIPULATIONS)}")
    badf = [f for f in families if f not in FAMILIES]
    if badf or not families:
        raise ValueError(f"unknown face family/families {badf}; expected some of {list(FAMILIES)}")
    if size < 32:
        raise ValueError(f"size must be >= 32 pixels, got {size}")
    rng = np.random.default_rng([seed, 104729])
    ids_pool = np.asarray(list(identities) if identities is not None else range(40))
    v_man = [manipulations[v % len(manipulations)] for v in range(n_videos)]
    v_fam = [families[(v // len(manipulations)) % len(families)] for v in range(n_videos)]
    v_id = rng.choice(ids_pool, n_videos)
    v_donor = np.array([rng.choice(ids_pool[ids_pool != i]) if (ids_pool != i).any() else i for i in v_id])
    v_expr = _expressions(rng, n_videos)
    v_pose = _poses(rng, n_videos, size)
    f = frames_per_video
    rep = lambda d: {k: np.repeat(v, f) for k, v in d.items()}  # noqa: E731
    expr = _jitter(rep(v_expr), rng, {"eye_open": 0.05, "mouth_open": 0.04, "smile": 0.05, "brow_raise": 0.004})
    expr["mouth_open"] = np.clip(expr["mouth_open"], 0, 1)
    pose = _jitter(rep(v_pose), rng, {"cx": 0.6, "cy": 0.6, "scale": 0.01 * size * 0.36, "angle": 0.015})
    lfw_jit = {"tx": rng.uniform(-0.03, 0.03, n_videos * f), "ty": rng.uniform(-0.03, 0.03, n_videos * f),
               "zoom": rng.uniform(0.96, 1.04, n_videos * f), "angle": np.deg2rad(rng.uniform(-4, 4, n_videos * f))}
    n = n_videos * f
    fam_f, id_f, donor_f = np.repeat(v_fam, f), np.repeat(v_id, f), np.repeat(v_donor, f)
    needs_donor = np.isin(np.repeat(v_man, f), ["id", "phys_eyes", "phy_nose", "phy_mouth"])

    images = np.empty((n, size, size, 3), np.uint8)
    donors = np.empty((n, size, size, 3), np.uint8)
    landmarks = np.empty((n, N_LANDMARKS, 2), np.float32)
    donor_lm = np.empty((n, N_LANDMARKS, 2), np.float32)
    regions = {k: np.zeros((n, size, size), bool) for k in REGION_NAMES}
    for fam in set(v_fam):
        sel = np.flatnonzero(fam_f == fam)
        sub = lambda d: {k: v[sel] for k, v in d.items()}  # noqa: E731
        if fam == "lfw":
            ids = id_f[sel] % 100
            im, rg, lm, *_ = _lfw_frames(ids, sub(lfw_jit), size, rng)
            dsel = sel[needs_donor[sel]]
            if len(dsel):
                dj = {k: v[dsel] for k, v in lfw_jit.items()}
                donors[dsel], _, donor_lm[dsel], *_ = _lfw_frames(donor_f[dsel] % 100, dj, size, rng)
        else:
            im, rg, lm = _render_family(fam, id_f[sel], sub(expr), sub(pose), size, seed, rng)
            dsel = sel[needs_donor[sel]]
            if len(dsel):
                dsub = lambda d: {k: v[dsel] for k, v in d.items()}  # noqa: E731
                donors[dsel], _, donor_lm[dsel] = _render_family(fam, donor_f[dsel], dsub(expr), dsub(pose), size,
                                                                 seed, rng)
        images[sel], landmarks[sel] = im, lm
        for k in REGION_NAMES:
            regions[k][sel] = rg[k]

    masks = np.zeros((n, size, size), np.float32)
    records = []
    for i in range(n):
        v = i // f
        man = v_man[v]
        params: dict = {}
        donor = None
        if man == "sbi":
            images[i], fake, masks[i], params = self_blend(images[i], landmarks[i], rng)
            images[i] = fake
        elif man == "id":
            images[i], masks[i] = identity_swap(images[i], donors[i], landmarks[i], rng)
            landmarks[i, 17:68] = donor_lm[i, 17:68]
            donor = int(donor_f[i])
        elif man == "expr_mouth":
            images[i], masks[i], landmarks[i], params = mouth_warp(images[i], landmarks[i], rng)
        elif man in _LOCAL_REGION:
            cross = rng.random() < 0.5
            images[i], masks[i], params = local_blend(
                images[i], {k: r[i] for k, r in regions.items()}, man, donors[i] if cross else None, rng)
            donor = int(donor_f[i]) if cross else None
        records.append({
            "manipulation": man, "label": int(man != "real"), "regions": MANIPULATION_REGIONS[man],
            "identity": int(id_f[i] % 100 if fam_f[i] == "lfw" else id_f[i]), "family": str(fam_f[i]),
            "video": video_offset + v, "frame": i % f, "donor": donor, "landmarks_exact": fam_f[i] != "lfw",
            "params": params,
        })
    return FaceBatch(images, masks, landmarks, regions, records)


def render_faces(n: int, family: str = "toon", size: int = 64, seed: int = 0,
                 identities: Sequence[int] | None = None) -> FaceBatch:
    """``n`` real frames, one per video, identities drawn from ``identities`` (default ``range(40)``)."""
    return make_dataset(n, 1, ("real",), (family,), size, seed, identities)
