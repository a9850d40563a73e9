"""Offline data sources and the base pattern for real-dataset loaders.

Everything here is available without a network connection:

* :func:`digits` -- the 1,797 real 8x8 handwritten digits that ship with scikit-learn;
* :func:`photos` -- real photographs that ship with scikit-image and scikit-learn, by name;
* :func:`faces` -- the 100 real 25x25 LFW face crops of ``skimage.data.lfw_subset`` plus the astronaut photo;
* procedural generators, one module per paper need (added by the paper projects), e.g.
  ``shared.data.shapes_world``.

Loaders of the papers' real datasets subclass :class:`DatasetRoot` (or call :func:`require_root`), which
checks a ``--data-root`` against the dataset's documented official layout and raises a
:class:`FileNotFoundError` naming the path and the expected layout. Nothing here downloads.
"""

from __future__ import annotations

from shared.data.offline import PHOTO_NAMES, digits, faces, photos
from shared.data.roots import DatasetRoot, require_root

__all__ = ["PHOTO_NAMES", "DatasetRoot", "digits", "faces", "photos", "require_root"]
