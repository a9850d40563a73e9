"""Real images and digits that ship inside installed packages (no download, no network)."""

from __future__ import annotations

from functools import cache

import numpy as np

# name -> (source, loader name). Only images bundled in the wheels are listed: some `skimage.data`
# entries (e.g. `eagle`, `retina`) need `pooch` and a download, so they are deliberately absent.
_SKIMAGE_COLOUR = ("astronaut", "chelsea", "coffee", "hubble_deep_field", "immunohistochemistry", "rocket")
_SKIMAGE_GRAY = ("camera", "brick", "clock", "coins", "grass", "gravel", "moon", "page", "text")
_SKLEARN = ("china", "flower")
PHOTO_NAMES: tuple[str, ...] = _SKIMAGE_COLOUR + _SKLEARN + _SKIMAGE_GRAY
"""Every name :func:`photos` accepts: colour photos first, then the grayscale ones."""


def digits() -> tuple[np.ndarray, np.ndarray]:
    """The scikit-learn handwritten digits (UCI optdigits test set, 1,797 images of 43 writers).

    Returns:
        images: float32 array of shape (1797, 8, 8), values in [0, 1] (the 0..16 counts divided by 16).
        labels: int64 array of shape (1797,), values 0..9.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return (bunch.images / 16.0).astype(np.float32), bunch.target.astype(np.int64)


@cache
def _load_photo(name: str) -> np.ndarray:
    if name in _SKLEARN:
        from sklearn.datasets import load_sample_image

        return load_sample_image(f"{name}.jpg")
    import skimage.data

    image = getattr(skimage.data, name)()
    if image.ndim == 2:  # grayscale: replicate to RGB so every photo has the same layout
        image = np.repeat(image[..., None], 3, axis=2)
    return np.ascontiguousarray(image[..., :3])


def photos(names: list[str] | tuple[str, ...] | None = None, *, include_gray: bool = False) -> dict[str, np.ndarray]:
    """Real photographs by name.

    Args:
        names: which photos (see :data:`PHOTO_NAMES`); default all colour photos, plus the grayscale ones
            when ``include_gray`` is true.
        include_gray: with ``names=None``, also return the grayscale photos (replicated to 3 channels).

    Returns:
        dict name -> uint8 array of shape (H, W, 3), RGB, values 0..255. Sizes differ (172x448 to 872x1000).

    Raises:
        ValueError: an unknown name (the message lists the known ones).
    """
    if names is None:
        names = _SKIMAGE_COLOUR + _SKLEARN + (_SKIMAGE_GRAY if include_gray else ())
    unknown = [n for n in names if n not in PHOTO_NAMES]
    if unknown:
        raise ValueError(f"unknown photo name(s) {unknown}; expected some of {list(PHOTO_NAMES)}")
    return {name: _load_photo(name).copy() for name in names}


def faces(include_astronaut: bool = True) -> list[np.ndarray]:
    """Real face crops: the 100 LFW faces of ``skimage.data.lfw_subset()`` and the astronaut photo's face.

    ``lfw_subset`` holds 100 faces followed by 100 non-face patches; only the faces are returned.

    Returns:
        list of float32 grayscale arrays in [0, 1]: 100 arrays of shape (25, 25), then (if
        ``include_astronaut``) one (H, W, 3) RGB crop of the astronaut's face (about 170x150).
    """
    import skimage.data

    lfw = skimage.data.lfw_subset()[:100].astype(np.float32)
    out = [face for face in lfw]
    if include_astronaut:
        out.append(skimage.data.astronaut()[20:190, 150:300].astype(np.float32) / 255.0)
    return out
