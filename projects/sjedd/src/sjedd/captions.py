"""Generic captions of real faces, for pretraining the tiny CLIP contrastively (our stand-in for OpenAI's CLIP
pretraining; README, Deviations).

The paper fine-tunes a CLIP that OpenAI pretrained on image-caption pairs. Offline we have no such model, so
``pretrain.py`` trains the tiny CLIP with CLIP's own objective on *real* synthetic faces and captions that describe
what is visible: skin tone, hair colour, eye opening, mouth, smile, head tilt and background. The attributes are
measured from the rendered pixels, region masks and landmarks that ``shared.data.faces_synth`` returns (its public
API); no caption mentions a manipulation, and no manipulated image is used, so the fine-tuning labels never leak
into the pretraining.
"""

from __future__ import annotations

from string import Formatter

import numpy as np

from shared.data.faces_synth import FaceBatch

CAPTION_TEMPLATE = ("a photo of a face with {skin} skin and {hair} hair , {eyes} eyes , a {mouth} {smile} mouth , "
                    "{tilt} , on a {background} background")
ATTRIBUTE_WORDS: dict[str, tuple[str, ...]] = {
    "skin": ("light", "medium", "dark"),
    "hair": ("black", "brown", "fair"),
    "eyes": ("narrow", "open", "wide"),
    "mouth": ("closed", "open"),
    "smile": ("smiling", "neutral", "frowning"),
    "tilt": ("tilted left", "upright", "tilted right"),
    "background": ("red", "green", "blue", "yellow", "purple", "cyan", "grey"),
}
"""The words each attribute may take, in the order of the measured bins."""


def caption_vocabulary() -> list[str]:
    """Every caption word (for the offline word-level tokenizer)."""
    literal = " ".join(text for text, _, _, _ in Formatter().parse(CAPTION_TEMPLATE))
    words = literal.split() + [w for values in ATTRIBUTE_WORDS.values() for v in values for w in v.split()]
    return sorted(set(words))


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb @ np.array([0.299, 0.587, 0.114])


def _region_mean(images: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Mean RGB (N, 3) of each image inside its boolean region (NaN where the region is empty)."""
    w = region.reshape(len(region), -1, 1).astype(np.float64)
    pix = images.reshape(len(images), -1, 3).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (w * pix).sum(1) / w.sum(1)


def face_attributes(batch: FaceBatch) -> dict[str, np.ndarray]:
    """Attribute bins (N,) per :data:`ATTRIBUTE_WORDS` key, measured from pixels, region masks and landmarks."""
    images, lm, regions = batch.images, batch.landmarks.astype(np.float64), batch.regions
    skin = _luma(_region_mean(images, regions["skin"]))
    hair = _luma(_region_mean(images, regions["brows"]))
    hair = np.where(np.isnan(hair), 0.0, hair)
    eye_w = np.linalg.norm(lm[:, 39] - lm[:, 36], axis=1) + np.linalg.norm(lm[:, 45] - lm[:, 42], axis=1)
    eye_h = (np.linalg.norm(lm[:, 37] - lm[:, 41], axis=1) + np.linalg.norm(lm[:, 44] - lm[:, 46], axis=1))
    eye_ratio = eye_h / np.maximum(eye_w, 1e-6)
    mouth_area = regions["mouth"].reshape(len(images), -1).sum(1)
    opening = (regions["mouth"] & ~regions["lips"]).reshape(len(images), -1).sum(1) / np.maximum(mouth_area, 1)
    eyes_l, eyes_r = lm[:, 36:42].mean(1), lm[:, 42:48].mean(1)
    axis = eyes_r - eyes_l
    tilt = np.degrees(np.arctan2(axis[:, 1], axis[:, 0]))
    up = np.stack([-axis[:, 1], axis[:, 0]], 1) / np.maximum(np.linalg.norm(axis, axis=1, keepdims=True), 1e-6)
    corners = (lm[:, 48] + lm[:, 54]) / 2
    centre = lm[:, [51, 57]].mean(1)
    lift = ((centre - corners) * up).sum(1) / np.maximum(np.linalg.norm(axis, axis=1), 1e-6)  # corners above centre
    k = max(2, images.shape[1] // 16)
    corner_pix = np.concatenate([images[:, :k, :k], images[:, :k, -k:]], 1).reshape(len(images), -1, 3)
    bg = corner_pix.mean(1) / 255.0
    hi = bg > bg.mean(1, keepdims=True) + 0.08
    colour = {(1, 0, 0): 0, (0, 1, 0): 1, (0, 0, 1): 2, (1, 1, 0): 3, (1, 0, 1): 4, (0, 1, 1): 5}
    background = np.array([colour.get(tuple(int(v) for v in h), 6) for h in hi])
    return {
        "skin": np.digitize(-skin, [-185.0, -150.0]),
        "hair": np.digitize(hair, [40.0, 75.0]),
        "eyes": np.digitize(eye_ratio, [0.36, 0.46]),
        "mouth": (opening > 0.15).astype(int),
        "smile": np.digitize(-lift, [-0.03, 0.03]),
        "tilt": np.digitize(tilt, [-3.0, 3.0]),
        "background": background,
    }


def face_captions(batch: FaceBatch) -> list[str]:
    """One caption per frame of ``batch`` (:data:`CAPTION_TEMPLATE` filled with :func:`face_attributes`)."""
    attrs = face_attributes(batch)
    return [CAPTION_TEMPLATE.format(**{k: ATTRIBUTE_WORDS[k][int(v[i])] for k, v in attrs.items()})
            for i in range(len(batch))]
