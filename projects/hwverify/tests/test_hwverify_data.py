"""Pairs are balanced and cover every same-writer combination; splits are writer-disjoint; CEDAR loading."""

from itertools import combinations

import cv2
import numpy as np
import pytest

from hwverify.config import DataConfig
from hwverify.data import (
    CedarRoot,
    load_data,
    make_pairs,
    model_input,
    subsample_writers,
    writer_batches,
    writer_disjoint_split,
)

WRITERS = np.repeat(np.arange(5), [3, 2, 4, 1, 3])  # uneven sample counts; writer 3 has a single sample


def test_make_pairs_all_combinations_and_balanced_negatives():
    idx = np.arange(len(WRITERS))
    pairs = make_pairs(WRITERS, idx, np.random.default_rng(0))
    pos, neg = pairs[pairs[:, 2] == 1], pairs[pairs[:, 2] == 0]
    expected = {tuple(c) for w in range(5) for c in combinations(np.flatnonzero(WRITERS == w), 2)}
    assert {tuple(p) for p in pos[:, :2]} == expected and len(pos) == 3 + 1 + 6 + 0 + 3
    assert len(neg) == len(pos)  # 1:1
    assert np.all(WRITERS[pos[:, 0]] == WRITERS[pos[:, 1]])
    assert np.all(WRITERS[neg[:, 0]] != WRITERS[neg[:, 1]])
    np.testing.assert_array_equal(neg[:, 0], pos[:, 0])  # each negative anchors on its positive's first sample


def test_make_pairs_negatives_are_uniform_over_other_writers():
    writers = np.repeat(np.arange(3), 2)  # anchor 0 (writer 0) may pair with samples 2..5, each 1/4
    partners = np.concatenate([make_pairs(writers, np.arange(6), np.random.default_rng(s))[3, 1:2]
                               for s in range(2000)])
    counts = np.bincount(partners, minlength=6)
    assert counts[:2].sum() == 0 and np.all(np.abs(counts[2:] / 2000 - 0.25) < 0.04)


def test_make_pairs_rejects_a_single_writer():
    with pytest.raises(ValueError, match="two writers"):
        make_pairs(np.zeros(4, int), np.arange(4), np.random.default_rng(0))


def test_writer_disjoint_split_and_subsampling():
    rng = np.random.default_rng(1)
    writers = np.repeat(np.arange(50), 3)
    split = writer_disjoint_split(writers, 0.1, 0.2, rng)
    sets = [set(split[k].tolist()) for k in ("train", "val", "test")]
    assert sum(map(len, sets)) == 50 and set.union(*sets) == set(range(50))
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    assert (len(sets[1]), len(sets[2])) == (5, 10)
    sub = subsample_writers(split["train"], 0.1, rng)
    assert len(sub) == 4 and set(sub.tolist()) <= sets[0]
    with pytest.raises(ValueError):
        subsample_writers(split["train"], 0.0, rng)


def test_writer_batches_cover_every_positive_once_per_epoch():
    writers = np.repeat(np.arange(11), 4)
    idx = np.arange(10, 44)  # writers 2.5 .. 10 (writer 2 has two samples here)
    positives, negatives = [], 0
    for samples, pairs in writer_batches(writers, idx, 3, np.random.default_rng(0)):
        assert np.unique(writers[samples]).size >= 3
        g = samples[pairs[:, :2]]
        assert np.all((writers[g[:, 0]] == writers[g[:, 1]]) == (pairs[:, 2] == 1))
        positives += [tuple(sorted(p)) for p in g[pairs[:, 2] == 1].tolist()]
        negatives += int(np.sum(pairs[:, 2] == 0))
    expected = [c for w in range(2, 11) for c in combinations(idx[writers[idx] == w].tolist(), 2)]
    assert sorted(positives) == sorted(expected) and negatives == len(expected)


def test_model_input_inverts_scans():
    x = model_input(np.full((2, 4, 4), 0.25, np.float32))
    assert x.shape == (2, 1, 4, 4) and np.allclose(x, 0.75)
    with pytest.raises(ValueError, match="square"):
        model_input(np.zeros((2, 4, 5)))


def test_synthetic_source_splits_by_writer():
    data = load_data(DataConfig(source="synthetic", n_writers=10, samples_per_writer=2, image_size=16,
                                val_fraction=0.2, test_fraction=0.2), None, seed=0)
    owners = [set(data.writer_ids[data.splits[k]].tolist()) for k in ("train", "val", "test")]
    assert not (owners[0] & owners[1] or owners[0] & owners[2] or owners[1] & owners[2])
    assert data.images.shape == (20, 16, 16) and data.styles["slant"].shape == (10,)


def _write_cedar(folder, writers, samples=2):
    folder.mkdir(parents=True, exist_ok=True)
    for w in writers:
        for s in range(1, samples + 1):
            img = np.full((30, 60), 255, np.uint8)
            cv2.putText(img, "and", (3, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6 + 0.05 * w, 0, 1)
            cv2.imwrite(str(folder / f"{w:04d}a_num{s}.png"), img)


def test_cedar_loader_reads_writer_ids_and_official_split(tmp_path):
    _write_cedar(tmp_path / "train", range(1, 9))
    _write_cedar(tmp_path / "test", range(9, 12))
    (tmp_path / "train" / "notes.txt").write_text("ignored")
    data = load_data(DataConfig(source="cedar", image_size=32, val_fraction=0.25), str(tmp_path), seed=0)
    assert data.images.shape == (22, 32, 32) and data.images.min() < 0.5 < data.images.max() <= 1.0
    test_names = {data.names[i] for i in data.splits["test"]}
    assert test_names == {f"{w:04d}a_num{s}" for w in range(9, 12) for s in (1, 2)}
    assert len(np.unique(data.writer_ids[data.splits["val"]])) == 2
    owners = [set(data.writer_ids[data.splits[k]].tolist()) for k in ("train", "val", "test")]
    assert not (owners[0] & owners[1] or owners[0] & owners[2] or owners[1] & owners[2])


def test_cedar_missing_or_empty_root_names_the_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match="XXXXy_numZ"):
        CedarRoot(tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match="no data root given"):
        load_data(DataConfig(source="cedar"), None, 0)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no image named like"):
        load_data(DataConfig(source="cedar"), str(tmp_path / "empty"), 0)


def test_cedar_corrupt_image_is_a_clear_error(tmp_path):
    _write_cedar(tmp_path, range(1, 4))
    (tmp_path / "0001a_num2.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="cannot read image"):
        load_data(DataConfig(source="cedar"), str(tmp_path), 0)


def test_cedar_loader_reads_sslhv_per_writer_subfolders(tmp_path):
    """SSL-HV's layout: supervised/train/<writer>/XXXXy_numZ.png; the root may be the parent of supervised/."""
    for w in range(1, 7):
        _write_cedar(tmp_path / "supervised" / "train" / f"{w:04d}", [w], samples=3)
    for w in range(7, 10):
        _write_cedar(tmp_path / "supervised" / "test" / f"{w:04d}", [w], samples=3)
    data = load_data(DataConfig(source="cedar", image_size=16, val_fraction=0.2), str(tmp_path), seed=0)
    assert data.images.shape == (27, 16, 16)
    assert {data.names[i] for i in data.splits["test"]} == {f"{w:04d}a_num{s}" for w in range(7, 10) for s in (1, 2, 3)}
    assert np.unique(data.writer_ids).size == 9 and len(np.unique(data.writer_ids[data.splits["val"]])) == 1
    # Originals stay at their own resolution (30 x 60), uint8, for the VLM and the chain-of-thought protocol.
    first = data.originals[0]
    assert first.dtype == np.uint8 and first.shape == (30, 60) and data.paths[0].parent.name == "0001"
    same = load_data(DataConfig(source="cedar", image_size=16, val_fraction=0.2), str(tmp_path / "supervised"), 0)
    assert same.names == data.names


def test_synthetic_originals_are_uint8_at_their_own_size():
    data = load_data(DataConfig(source="synthetic", n_writers=4, samples_per_writer=2, image_size=16,
                                original_size=48, val_fraction=0.25, test_fraction=0.25), None, seed=0)
    assert data.images.shape == (8, 16, 16) and data.originals.shape == (8, 48, 48)
    assert data.originals.dtype == np.uint8 and data.originals.max() > 200 and data.originals.min() < 80
    back = cv2.resize(data.originals[0], (16, 16), interpolation=cv2.INTER_AREA) / 255.0
    np.testing.assert_allclose(data.images[0], back, atol=1e-6)  # the ResNet's view is resized from the original
