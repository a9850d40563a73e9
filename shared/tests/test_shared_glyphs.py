"""Tests of shared.data.glyphs: procedural stroke-glyph classes for few-shot classification."""

import numpy as np
import pytest

from shared.data.glyphs import GlyphAlphabet, render_strokes


def test_schema_and_determinism():
    alphabet = GlyphAlphabet(50, seed=4)
    a = alphabet.sample([0, 3, 3, 49], np.random.default_rng(0), size=20)
    b = GlyphAlphabet(50, seed=4).sample([0, 3, 3, 49], np.random.default_rng(0), size=20)
    assert a["images"].shape == (4, 20, 20) and a["images"].dtype == np.float32
    assert a["images"].min() >= 0 and a["images"].max() <= 1 and a["images"].max() > 0.9
    np.testing.assert_array_equal(a["labels"], [0, 3, 3, 49])
    assert a["control_points"].shape == (4, 4, 3, 2) and a["stroke_mask"].shape == (4, 4)
    np.testing.assert_array_equal(a["images"], b["images"])
    assert not np.array_equal(a["images"][1], a["images"][2])  # two samples of a class differ (jitter)


def test_samples_of_a_class_are_closer_than_samples_of_other_classes():
    alphabet = GlyphAlphabet(40, seed=0)
    rng = np.random.default_rng(1)
    x = alphabet.sample(np.repeat(np.arange(40), 6), rng)["images"].reshape(40, 6, -1)
    x = x / np.linalg.norm(x, axis=-1, keepdims=True)
    centroids = x[:, :3].mean(1)  # nearest-centroid classification of the other 3 samples
    pred = np.argmax(np.einsum("cqd,kd->cqk", x[:, 3:], centroids), -1)
    assert (pred == np.arange(40)[:, None]).mean() > 0.5  # chance is 1/40; measured 0.62


def test_render_strokes_draws_a_line_where_expected():
    pts = np.array([[[[0.1, 0.5], [0.5, 0.5], [0.9, 0.5]]]])  # one horizontal stroke at y = 0.5
    img = render_strokes(pts, np.array([[True]]), np.array([0.05]), 20)[0]
    assert img[10, 3:17].min() > 0.9 and img[:5].max() == 0 and img[15:].max() == 0
    empty = render_strokes(pts, np.array([[False]]), np.array([0.05]), 20)[0]
    assert empty.max() == 0


def test_bad_inputs():
    with pytest.raises(ValueError, match="class ids"):
        GlyphAlphabet(10).sample([10], np.random.default_rng(0))
    with pytest.raises(ValueError):
        GlyphAlphabet(0)
