"""Offline data sources and the base pattern for real-dataset loaders.

Everything here is available without a network connection:

* :func:`digits` -- the 1,797 real 8x8 handwritten digits that ship with scikit-learn;
* :func:`photos` -- real photographs that ship with scikit-image and scikit-learn, by name;
* :func:`faces` -- the 100 real 25x25 LFW face crops of ``skimage.data.lfw_subset`` plus the astronaut photo;
* procedural generators, one module each, documented in its docstring (import the module itself):

  - ``shared.data.shapes_world`` -- captioned shapes scenes with exact masks and PIE-Bench-style edit records
    (conddiff, multiedits);
  - ``shared.data.faces_synth`` -- synthetic faces with landmarks and region masks, SBI / identity swap / mouth
    warp / local blends, short videos (x2dfd, sjedd);
  - ``shared.data.inpainting`` -- real photos inpainted inside random masks by four methods (definet);
  - ``shared.data.ct_phantom`` -- 3-D chest CT phantoms with lesion masks (nlran);
  - ``shared.data.handwriting`` -- multi-writer synthetic handwriting of the word "and" (hwverify);
  - ``shared.data.sinusoid`` and ``shared.data.glyphs`` -- contaminated sinusoid tasks and Omniglot-like stroke
    glyphs (hetrom);
  - ``shared.data.toy2d`` -- low-dimensional mixtures such as 8 Gaussians on a ring (sfd).

Loaders of the papers' real datasets subclass :class:`DatasetRoot` (or call :func:`require_root`), which
checks a ``--data-root`` against the dataset's documented official layout and raises a
:class:`FileNotFoundError` naming the path and the expected layout. Nothing here downloads.
"""

from __future__ import annotations

from shared.data.offline import PHOTO_NAMES, digits, faces, photos
from shared.data.roots import DatasetRoot, require_root

__all__ = ["PHOTO_NAMES", "DatasetRoot", "digits", "faces", "photos", "require_root"]
