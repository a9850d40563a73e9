"""shared.data.handwriting: determinism, schema, and writer styles (same writer -> same style)."""

import numpy as np
import pytest

from shared.data.handwriting import STYLE_KEYS, handwriting_and


def test_schema_and_determinism():
    a = handwriting_and(5, 3, size=32, seed=7)
    b = handwriting_and(5, 3, size=32, seed=7)
    assert a.images.shape == (15, 32, 32) and a.images.dtype == np.float32 and len(a) == 15
    assert 0.0 <= a.images.min() and a.images.max() <= 1.0
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.writer_ids, np.repeat(np.arange(5), 3))
    np.testing.assert_array_equal(a.sample_ids, np.tile([1, 2, 3], 5))
    assert a.names[:4] == ["0001a_num1", "0001a_num2", "0001a_num3", "0002a_num1"]
    assert set(a.styles) == set(STYLE_KEYS) and all(v.shape == (5,) for v in a.styles.values())
    assert not np.array_equal(a.images, handwriting_and(5, 3, size=32, seed=8).images)


def test_images_look_like_scans_of_a_word():
    hw = handwriting_and(6, 2, size=64, seed=0)
    flat = hw.images.reshape(len(hw), -1)
    ink = flat < 0.75
    frac = ink.mean(1)
    assert np.all((frac > 0.05) & (frac < 0.6))  # dark ink on white paper, neither empty nor filled
    assert np.all(flat.min(1) < 0.6)  # even a thin, blurred pen leaves dark strokes
    assert np.median(hw.images) > 0.8
    cols = (hw.images < 0.9).any(axis=1).mean(1)  # the crop is squashed to the ink: ink spans the width
    assert np.all(cols > 0.75)


def test_within_writer_variation_is_smaller_than_between_writers():
    hw = handwriting_and(40, 2, size=32, seed=3)
    x = hw.images.reshape(40, 2, -1)
    within = np.abs(x[:, 0] - x[:, 1]).mean()
    between = np.abs(x[:, 0] - np.roll(x[:, 1], 1, axis=0)).mean()
    assert within < 0.8 * between
    still = handwriting_and(4, 2, size=32, seed=3, jitter=0.0).images.reshape(4, 2, -1)
    assert np.abs(still[:, 0] - still[:, 1]).max() < 0.25  # jitter 0: a writer's samples differ by pixel noise only
    assert np.abs(still[:, 0] - still[:, 1]).mean() < 0.05


def test_style_ranges_and_bad_arguments():
    s = handwriting_and(200, 1, size=16, seed=0).styles
    assert s["slant"].min() >= -0.4 and s["slant"].max() <= 0.4 and set(np.unique(s["thickness"])) <= set(range(2, 7))
    assert 0.2 < s["join"].mean() < 0.8
    with pytest.raises(ValueError):
        handwriting_and(0, 3)
    with pytest.raises(ValueError):
        handwriting_and(3, 3, size=4)
    with pytest.raises(ValueError):
        handwriting_and(3, 3, jitter=-1)
