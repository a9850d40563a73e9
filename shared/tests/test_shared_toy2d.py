import numpy as np
import pytest

from shared.data.toy2d import grid_gaussians, ring_gaussians, spiral, toy2d


def test_ring_shapes_dtypes_and_seeding():
    x, y = ring_gaussians(1000, seed=3)
    assert x.shape == (1000, 2) and x.dtype == np.float32
    assert y.shape == (1000,) and y.dtype == np.int64 and set(np.unique(y)) <= set(range(8))
    x2, y2 = ring_gaussians(1000, seed=3)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    assert not np.array_equal(x, ring_gaussians(1000, seed=4)[0])


def test_ring_points_sit_at_their_labelled_centre():
    x, y = ring_gaussians(20000, n_modes=8, radius=2.0, std=0.1, seed=0)
    angle = 2 * np.pi * y / 8
    centres = 2.0 * np.stack([np.cos(angle), np.sin(angle)], 1)
    resid = x - centres
    assert abs(resid.std() - 0.1) < 0.005  # the residual is the component noise
    assert np.abs(resid.mean(0)).max() < 0.005
    counts = np.bincount(y, minlength=8) / len(y)
    assert np.abs(counts - 1 / 8).max() < 0.02


def test_default_ring_has_unit_scale():
    x, _ = ring_gaussians(50000, seed=1)
    # per-coordinate variance = radius² / 2 + std² = 1 + 0.01
    np.testing.assert_allclose(x.var(0), 1.01, atol=0.03)


def test_grid_and_spiral():
    x, y = grid_gaussians(5000, side=5, spacing=0.5, std=0.0, seed=0)
    assert set(np.unique(np.round(x[:, 0], 6))) == {-1.0, -0.5, 0.0, 0.5, 1.0}
    assert y.max() == 24
    s, arm = spiral(3000, std=0.0, seed=0)
    assert s.shape == (3000, 2) and set(np.unique(arm)) == {0, 1}
    assert np.linalg.norm(s, axis=1).max() <= 1.5 + 1e-5


def test_bad_input():
    with pytest.raises(ValueError, match="positive integer"):
        ring_gaussians(0)
    with pytest.raises(ValueError, match="unknown 2-D toy"):
        toy2d("moons", 10)
    with pytest.raises(ValueError, match="std"):
        grid_gaussians(10, std=-1.0)
