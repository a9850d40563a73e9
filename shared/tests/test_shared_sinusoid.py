"""Tests of shared.data.sinusoid: the contaminated sinusoid task family."""

import numpy as np
import pytest

from shared.data.sinusoid import CLEAN, EASY, NOISY, OUTLIER, SinusoidFamily, sample_tasks


def test_shapes_dtypes_and_determinism():
    a = sample_tasks(np.random.default_rng(3), 7, n_support=5, n_query=4)
    b = sample_tasks(np.random.default_rng(3), 7, n_support=5, n_query=4)
    assert a["x_support"].shape == (7, 5, 1) and a["y_query"].shape == (7, 4, 1)
    assert a["x_support"].dtype == np.float32 and a["kind"].dtype == np.int64
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


def test_clean_tasks_follow_the_maml_family_exactly():
    t = sample_tasks(np.random.default_rng(0), 200)
    assert (t["kind"] == CLEAN).all()
    assert t["amplitude"].min() >= 0.1 and t["amplitude"].max() <= 5.0
    assert t["phase"].min() >= 0 and t["phase"].max() <= np.pi
    assert np.abs(t["x_support"]).max() <= 5.0
    expected = t["amplitude"][:, None, None] * np.sin(t["x_query"] - t["phase"][:, None, None])
    np.testing.assert_allclose(t["y_query"], expected, atol=1e-5)
    np.testing.assert_array_equal(t["y_support"], t["f_support"])


def test_contamination_kinds_rates_and_effects():
    fam = SinusoidFamily(noisy_rate=0.2, outlier_rate=0.1, easy_rate=0.3, noise_std=3.0)
    t = sample_tasks(np.random.default_rng(1), 20000, n_support=5, n_query=5, family=fam)
    rates = np.bincount(t["kind"], minlength=4) / 20000
    np.testing.assert_allclose(rates, [0.4, 0.2, 0.1, 0.3], atol=0.015)
    noisy = t["kind"] == NOISY
    resid = (t["y_query"] - t["f_query"])[noisy]
    assert abs(resid.std() - 3.0) < 0.05  # label noise of std 3 on noisy tasks only
    assert np.array_equal(t["y_query"][~noisy], t["f_query"][~noisy])
    out = t["kind"] == OUTLIER
    assert (t["frequency"][out] == 3.0).all() and (t["frequency"][~out] == 1.0).all()
    assert t["amplitude"][out].max() > 5.0 and t["amplitude"][out].min() >= 0.5
    easy = t["kind"] == EASY
    assert t["amplitude"][easy].max() <= 0.5


@pytest.mark.parametrize("kwargs", [{"noisy_rate": 0.7, "outlier_rate": 0.5}, {"noisy_rate": -0.1},
                                    {"amp_range": (5.0, 0.1)}, {"noise_std": -1.0}])
def test_bad_family_is_rejected(kwargs):
    with pytest.raises(ValueError):
        SinusoidFamily(**kwargs)


def test_bad_sizes_are_rejected():
    with pytest.raises(ValueError, match="n_tasks"):
        sample_tasks(np.random.default_rng(0), 0)
