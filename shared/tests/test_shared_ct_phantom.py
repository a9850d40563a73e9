"""The 3-D chest CT phantom: schema, determinism, and lesions that match each class."""

from __future__ import annotations

import numpy as np
import pytest

from shared.data.ct_phantom import CLASSES, LUNG_HU, chest_ct_dataset, chest_ct_phantom, window


def test_schema_and_determinism():
    a = chest_ct_phantom(0, (16, 24, 20), rng=5)
    b = chest_ct_phantom(0, (16, 24, 20), rng=5)
    assert a.volume.shape == (16, 24, 20) and a.volume.dtype == np.float32
    assert a.lesion_mask.dtype == bool and a.lung_mask.shape == a.volume.shape
    np.testing.assert_array_equal(a.volume, b.volume)
    assert not np.array_equal(a.volume, chest_ct_phantom(0, (16, 24, 20), rng=6).volume)
    assert CLASSES == ("covid19", "common_pneumonia", "normal")


def test_lesion_masks_match_their_class():
    rng = np.random.default_rng(0)
    stats = {c: [] for c in range(3)}
    for _ in range(12):
        for c in range(3):
            ct = chest_ct_phantom(c, (32, 32, 32), rng)
            assert (ct.lesion_mask & ~ct.lung_mask).sum() == 0  # lesions lie inside the lungs
            stats[c].append(ct)
    assert all(not ct.lesion_mask.any() and not ct.lesions for ct in stats[2])
    assert all(ct.lesion_mask.any() for ct in stats[0] + stats[1])
    # COVID-19: several ground-glass opacities, mostly bilateral; CP: 1-2 consolidations, mostly unilateral.
    assert all(3 <= len(ct.lesions) <= 8 and {le["kind"] for le in ct.lesions} == {"ggo"} for ct in stats[0])
    assert all(1 <= len(ct.lesions) <= 2 and {le["kind"] for le in ct.lesions} == {"consolidation"} for ct in stats[1])
    bilateral = lambda cts: np.mean([len({le["side"] for le in ct.lesions}) == 2 for ct in cts])  # noqa: E731
    assert bilateral(stats[0]) > 0.5 > bilateral(stats[1])
    # GGOs are faint (well below soft tissue), consolidations dense; GGOs are more peripheral.
    mean_hu = lambda cts: np.mean([ct.volume[ct.lesion_mask].mean() for ct in cts])  # noqa: E731
    assert LUNG_HU < mean_hu(stats[0]) < mean_hu(stats[1])
    def from_lung_centre(cts):  # mean in-plane distance of lesion centres from their lung's centre
        return np.mean([np.hypot(le["center"][1], abs(le["center"][2]) - 0.41) for ct in cts for le in ct.lesions])

    assert from_lung_centre(stats[0]) > from_lung_centre(stats[1])


def test_dataset_is_balanced_and_window_scales():
    data = chest_ct_dataset(9, (12, 12, 12), seed=1)
    assert data["volumes"].shape == (9, 12, 12, 12)
    assert np.bincount(data["labels"]).tolist() == [3, 3, 3]
    np.testing.assert_array_equal(data["lesion_masks"].reshape(9, -1).any(1), data["labels"] != 2)
    w = window(np.array([-2000.0, -1200.0, -300.0, 600.0, 900.0]))
    np.testing.assert_allclose(w, [0.0, 0.0, 0.5, 1.0, 1.0])


def test_bad_inputs():
    with pytest.raises(ValueError, match="label"):
        chest_ct_phantom(3)
    with pytest.raises(ValueError, match="shape"):
        chest_ct_phantom(0, (4, 64, 64))
    with pytest.raises(ValueError, match="n must"):
        chest_ct_dataset(0)
    with pytest.raises(ValueError, match="lo < hi"):
        window(np.zeros(3), 1.0, 0.0)
