"""Tests of the procedural faces and their manipulations (shared.data.faces_synth)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from shared.data import faces_synth as fs


@pytest.fixture(scope="module")
def batch() -> fs.FaceBatch:
    return fs.make_dataset(14, 2, fs.MANIPULATIONS, ("toon", "shaded"), size=64, seed=3)


def test_schema_and_labels(batch):
    n = 28
    assert batch.images.shape == (n, 64, 64, 3) and batch.images.dtype == np.uint8
    assert batch.masks.shape == (n, 64, 64) and batch.masks.dtype == np.float32
    assert batch.landmarks.shape == (n, 81, 2)
    assert set(batch.regions) == set(fs.REGION_NAMES)
    assert all(r.shape == (n, 64, 64) and r.dtype == bool for r in batch.regions.values())
    assert 0 <= batch.masks.min() and batch.masks.max() <= 1
    for rec in batch.records:
        assert rec["label"] == int(rec["manipulation"] != "real")
        assert rec["regions"] == fs.MANIPULATION_REGIONS[rec["manipulation"]]
        assert rec["family"] in ("toon", "shaded")
    # manipulation cycles per video, family cycles after all manipulations, frames share video and identity
    mans = [r["manipulation"] for r in batch.records[::2]]
    assert mans == list(fs.MANIPULATIONS) * 2
    assert [r["family"] for r in batch.records[::2]] == ["toon"] * 7 + ["shaded"] * 7
    assert np.array_equal(batch.videos, np.repeat(np.arange(14), 2))
    assert all(batch.records[2 * v]["identity"] == batch.records[2 * v + 1]["identity"] for v in range(14))
    real = batch.labels == 0
    assert np.all(batch.masks[real] == 0) and np.all(batch.masks[~real].reshape(real.size - real.sum(), -1).max(1) > 0)
    sample = batch[3]
    assert sample["image"].shape == (64, 64, 3) and set(sample["regions"]) == set(fs.REGION_NAMES)


def test_deterministic():
    a = fs.make_dataset(4, 2, ("sbi", "id"), seed=5)
    b = fs.make_dataset(4, 2, ("sbi", "id"), seed=5)
    c = fs.make_dataset(4, 2, ("sbi", "id"), seed=6)
    assert np.array_equal(a.images, b.images) and np.array_equal(a.masks, b.masks)
    assert not np.array_equal(a.images, c.images)


def test_landmarks_match_regions():
    b = fs.render_faces(12, "toon", seed=1)
    for i in range(12):
        lm = b.landmarks[i]
        for k, name in ((36, "eyes"), (42, "eyes"), (48, "mouth")):
            n_pts = 12 if name == "mouth" else 6
            x, y = np.round(lm[k : k + n_pts].mean(0)).astype(int)
            assert b.regions[name][i, y, x], (i, name)
        x, y = np.round(lm[30]).astype(int)  # nose tip inside the nose (it lies on the ridge above the base)
        assert b.regions["nose"][i, y, x]
        # the hull of all 81 points covers the face (skin + inner regions) almost exactly
        face = b.regions["skin"][i] | b.regions["eyes"][i] | b.regions["nose"][i] | b.regions["mouth"][i]
        hull = fs.hull_mask(lm, (64, 64)) > 0
        assert (face & hull).sum() / face.sum() > 0.9
    r = b.regions
    assert not np.any(r["skin"] & (r["eyes"] | r["nose"] | r["mouth"] | r["brows"]))
    assert np.all(r["mouth"][r["lips"]])


def test_sbi_changes_pixels_only_inside_mask():
    b = fs.render_faces(6, "shaded", seed=2)
    rng = np.random.default_rng(0)
    for i in range(6):
        target, fake, mask, params = fs.self_blend(b.images[i], b.landmarks[i], rng)
        assert np.array_equal(fake[mask == 0], target[mask == 0])
        assert params["ratio"] in fs.BLEND_RATIOS and params["transformed"] in ("source", "target")
        assert 5 <= params["k1"] <= 25 and params["k1"] % 2 == 1 and 5 <= params["sigma"] <= 45
        assert abs(mask.max() - params["ratio"]) < 1e-5
        assert np.abs(fake.astype(int) - target.astype(int))[mask > 0.5 * mask.max()].mean() > 0


def test_dynamic_blend_equation_and_ratio_distribution():
    rng = np.random.default_rng(1)
    src = np.full((48, 48, 3), 200, np.uint8)
    tgt = np.full((48, 48, 3), 40, np.uint8)
    hull = np.zeros((48, 48), np.float32)
    hull[10:38, 12:36] = 1
    ratios = []
    for _ in range(300):
        out, m, info = fs.dynamic_blend(src, tgt, hull, rng)
        assert np.allclose(out, np.round(m[..., None] * 200 + (1 - m[..., None]) * 40), atol=1)
        ratios.append(info["ratio"])
    ratios = np.array(ratios)
    assert set(ratios) <= {0.25, 0.5, 0.75, 1.0}
    assert abs((ratios == 1).mean() - 0.5) < 0.1  # r = 1 has probability 1/2 (3 of the 6 list entries)


def test_get_blend_mask_support_and_core():
    rng = np.random.default_rng(2)
    hull = np.zeros((64, 64), np.float32)
    cv2.circle(hull, (32, 32), 16, 1.0, -1)
    grown = cv2.dilate(hull, np.ones((11, 11), np.uint8))  # 5 px: the largest blur support at this size
    for _ in range(20):
        m, info = fs.get_blend_mask(hull, rng)
        assert m.min() >= 0 and abs(m.max() - 1) < 1e-5
        assert np.all(m[grown == 0] == 0)
        assert m[32, 32] > 0.5
        assert 192 <= info["resize"][0] <= 256 and 192 <= info["resize"][1] <= 256


def test_hull_types_and_bad_type():
    b = fs.render_faces(1, "toon", seed=0)
    areas = [fs.hull_mask(b.landmarks[0], (64, 64), t).sum() for t in (0, 1, 2, 3)]
    assert all(a > 200 for a in areas)
    assert areas[3] >= max(areas[0], areas[2])  # the full hull contains the part hulls
    with pytest.raises(ValueError, match="hull_type"):
        fs.hull_mask(b.landmarks[0], (64, 64), 7)


def test_identity_swap_and_local_blend_outside_mask_unchanged():
    b = fs.render_faces(2, "toon", seed=4, identities=[0, 1])
    rng = np.random.default_rng(3)
    out, m = fs.identity_swap(b.images[0], b.images[1], b.landmarks[0], rng)
    assert np.array_equal(out[m == 0], b.images[0][m == 0]) and (m > 0).sum() > 300
    for kind in ("phys_eyes", "phy_nose", "phy_mouth"):
        for donor in (None, b.images[1]):
            regions = {k: v[0] for k, v in b.regions.items()}
            out, m, info = fs.local_blend(b.images[0], regions, kind, donor, rng)
            assert np.array_equal(out[m == 0], b.images[0][m == 0])
            touched = np.zeros((64, 64), bool)
            for name in {"phys_eyes": ("eyes",), "phy_nose": ("nose",), "phy_mouth": ("mouth",)}[kind]:
                touched |= regions[name]
            assert m[touched].min() > 0.5  # the whole region is blended
            near = cv2.dilate(touched.astype(np.uint8), np.ones((2 * 9 + 3, 2 * 9 + 3))).astype(bool)  # r=3: 3r px
            assert m[regions["skin"] & ~near].max() == 0


def test_mouth_warp_is_local():
    b = fs.render_faces(1, "toon", seed=5)
    out, m, lm, _ = fs.mouth_warp(b.images[0], b.landmarks[0], np.random.default_rng(0))
    diff = np.abs(out.astype(int) - b.images[0].astype(int)).sum(-1)
    assert diff[m == 0].mean() < 2 and diff[m > 0.3].mean() > diff[m == 0].mean()
    assert np.allclose(lm[:36], b.landmarks[0][:36], atol=1.0)  # jaw, brows, nose barely move


def test_lfw_family_uses_real_crops():
    b = fs.make_dataset(3, 2, ("real", "sbi", "id"), ("lfw",), seed=0)
    assert all(not r["landmarks_exact"] and r["family"] == "lfw" for r in b.records)
    assert np.all(b.images[..., 0] == b.images[..., 1]) or b.labels.any()  # grayscale reals


def test_bad_inputs():
    with pytest.raises(ValueError, match="manipulation"):
        fs.make_dataset(2, 1, ("real", "deepfake"))
    with pytest.raises(ValueError, match="family"):
        fs.make_dataset(2, 1, ("real",), ("cartoon",))
    with pytest.raises(ValueError, match="size"):
        fs.make_dataset(2, 1, ("real",), size=16)
