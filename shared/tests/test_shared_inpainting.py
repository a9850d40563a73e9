"""The offline inpainting generator: masks, every method, determinism, only the mask region changes."""

import numpy as np
import pytest

from shared.data.inpainting import INPAINT_METHODS, exemplar_fill, inpaint, inpainting_dataset, random_mask


def test_masks_in_range_and_kinds():
    rng = np.random.default_rng(0)
    for kind in ("freeform", "object"):
        for _ in range(10):
            mask, got = random_mask(rng, 64, kind)
            assert got == kind and mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}
            assert 0.02 <= mask.mean() <= 0.35
    with pytest.raises(ValueError, match="mask kind"):
        random_mask(rng, 64, "square")


@pytest.mark.parametrize("method", INPAINT_METHODS)
def test_inpaint_changes_only_the_hole(method):
    rng = np.random.default_rng(1)
    image = (rng.random((48, 48, 3)) * 255).astype(np.uint8)
    mask = np.zeros((48, 48), np.uint8)
    mask[15:30, 20:35] = 1
    out = inpaint(image, mask, method)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert np.array_equal(out[mask == 0], image[mask == 0])
    assert not np.array_equal(out[mask == 1], image[mask == 1])


def test_exemplar_copies_a_patch_from_elsewhere():
    image = np.zeros((40, 40, 3), np.uint8)
    image[:, :20] = 200  # left half bright, right half dark
    mask = np.zeros((40, 40), np.uint8)
    mask[5:10, 5:10] = 1  # a hole in the bright half is filled with bright pixels
    out = exemplar_fill(image, mask)
    assert (out[5:10, 5:10] == 200).all()


def test_dataset_schema_and_determinism():
    a = inpainting_dataset(8, size=32, seed=3, photo_names=["camera", "coffee"])
    b = inpainting_dataset(8, size=32, seed=3, photo_names=["camera", "coffee"])
    assert a["images"].shape == (8, 32, 32, 3) and a["masks"].shape == (8, 32, 32)
    assert a["methods"] == list(INPAINT_METHODS) * 2 and set(a["photos"]) <= {"camera", "coffee"}
    assert np.array_equal(a["images"], b["images"]) and np.array_equal(a["masks"], b["masks"])
    diff = np.abs(a["images"].astype(int) - a["originals"].astype(int)).sum(-1)
    assert diff[a["masks"] == 1].mean() > diff[a["masks"] == 0].mean()  # the tampering is inside the mask
    with pytest.raises(ValueError, match="inpainting methods"):
        inpainting_dataset(2, methods=["photoshop"])
