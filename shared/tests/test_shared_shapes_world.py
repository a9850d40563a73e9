"""Tests of the procedural shapes world and its PIE-Bench-style edit records."""

import json

import numpy as np
import pytest

from shared.data import shapes_world as sw


def test_deterministic_by_seed():
    a, b, c = sw.generate(64, 3), sw.generate(64, 3), sw.generate(64, 4)
    assert np.array_equal(a.images, b.images) and a.captions == b.captions
    assert not np.array_equal(a.images, c.images)


def test_shapes_and_object_counts():
    batch = sw.generate(200, 0, image_size=24, min_objects=2, max_objects=3)
    assert batch.images.shape == (200, 24, 24, 3) and batch.images.dtype == np.uint8
    assert batch.masks.shape == (200, 3, 24, 24) and batch.masks.dtype == bool
    assert set(batch.n_objects.tolist()) == {2, 3}
    assert ((batch.shape >= 0) == batch.masks.any(axis=(2, 3))).all()  # absent objects have empty masks


@pytest.mark.parametrize("size", [32, 48])
def test_masks_match_rendered_pixels(size):
    batch = sw.generate(300, 1, image_size=size)
    for k in range(3):
        mask = batch.masks[:, k]
        colour = sw.COLOUR_RGB[np.maximum(batch.colour[:, k], 0)][:, None, None, :]
        assert (batch.images == colour).all(-1)[mask].all()  # every masked pixel has the object's colour
    # the union of the masks is exactly the set of pixels that differ from the empty scene's background
    empty = sw.render_scenes([sw.Scene(sw.BACKGROUNDS[b], (sw.ShapeObject("circle", "red", "small", "left"),))
                              for b in batch.background], size)
    background_only = empty.images.copy()
    background_only[empty.masks[:, 0]] = batch.images[empty.masks[:, 0]]  # unknown under the probe object
    differs = (batch.images != background_only).any(-1)
    union = batch.masks.any(1)
    assert (differs <= union).all()
    assert (union.sum(1).sum(1) > 0).all()
    assert not (batch.masks.sum(1) > 1).any()  # visible masks are disjoint


def test_shape_geometry_by_hand():
    scene = sw.Scene("black", (sw.ShapeObject("square", "white", "small", "left"),))
    batch = sw.render_scenes([scene], 32)
    # small square: half-extent 3.5 around (7, 16): pixel centres 3.5..10.5 in x, 12.5..19.5 in y
    expected = np.zeros((32, 32), bool)
    expected[12:20, 3:11] = True
    assert np.array_equal(batch.masks[0, 0], expected)
    circle = sw.render_scenes([sw.Scene("black", (sw.ShapeObject("circle", "red", "big", "top"),))]).masks[0, 0]
    yy, xx = np.mgrid[0:32, 0:32] + 0.5
    assert np.array_equal(circle, (xx - 16) ** 2 + (yy - 7) ** 2 <= 6.5**2)


def test_captions_use_the_closed_vocabulary_and_match_scenes():
    batch = sw.generate(100, 2)
    for i, caption in enumerate(batch.captions):
        assert set(caption.split()) <= set(sw.VOCABULARY)
        assert batch.scene(i).caption() == caption
    s = sw.Scene("gray", (sw.ShapeObject("circle", "red", "big", "left"), sw.ShapeObject("square", "blue", "small",
                                                                                         "top")))
    assert s.caption() == "a big red circle on the left and a small blue square at the top on a gray background"
    assert sw.Scene.from_dict(json.loads(json.dumps(s.to_dict()))) == s


def test_rle_round_trip_and_pie_bench_border():
    rng = np.random.default_rng(0)
    mask = rng.random((32, 32)) > 0.7
    rle = sw.rle_encode(mask)
    assert np.array_equal(sw.rle_decode(rle, (32, 32), border=False), mask)
    with_border = sw.rle_decode(rle, (32, 32))
    assert with_border[0].all() and with_border[-1].all() and with_border[:, 0].all() and with_border[:, -1].all()
    assert np.array_equal(with_border[1:-1, 1:-1], mask[1:-1, 1:-1])
    # hand example: pixels 2, 3, 4 and 9 of a 4x4 image; a string (PIE-Bench++) decodes the same; runs are clipped
    assert sw.rle_encode(np.isin(np.arange(16), [2, 3, 4, 9]).reshape(4, 4)) == [2, 3, 9, 1]
    assert np.array_equal(sw.rle_decode("2 3 9 1", (4, 4), border=False), sw.rle_decode([2, 3, 9, 1], (4, 4),
                                                                                         border=False))
    assert sw.rle_decode([14, 10], (4, 4), border=False).sum() == 2
    with pytest.raises(ValueError, match="pairs"):
        sw.rle_decode([1, 2, 3], (4, 4))


def test_edit_records_are_exact():
    records = sw.edit_records(60, 5)
    json.dumps(records)  # JSON-ready
    kinds = set()
    for r in records:
        src, tgt = sw.render_edit(r)
        assert src.captions[0] == r["source_prompt"] == r["original_prompt"]
        assert tgt.captions[0] == r["target_prompt"] == sw.strip_brackets(r["editing_prompt"])
        assert 1 <= len(r["aspects"]) <= 3 and isinstance(r["editing_type_id"], str)
        mask = sw.rle_decode(r["mask"], (32, 32), border=False)
        changed = (src.images[0] != tgt.images[0]).any(-1)
        assert (changed <= mask).all()  # every changed pixel lies in the edit region
        for a in r["aspects"]:
            kinds.add(a["type"])
            assert r["editing_prompt"].count("[") >= 0
            if a["type"] in ("change_colour", "change_object", "change_size"):
                assert getattr(sw.Scene.from_dict(r["target_scene"]).objects[a["object"]], a["attribute"]) == \
                    a["target"]
        assert len(r["blended_words"]) == len(r["aspects"]) and all(len(b.split()) == 2 for b in r["blended_words"])
    assert kinds == set(sw.EDIT_TYPES) - {"change_texture"}


def _apply_edit_action(source: str, edit_action: dict) -> str:
    """PIE-Bench++ semantics, written independently of the generator: edits in order; a swap replaces the first
    occurrence of its source words, "+" inserts at the (shifted) source position, "-" removes the words."""
    words, pending = source.split(), [[text, v["action"], v["position"]] for text, v in edit_action.items()]
    for k, (text, action, pos) in enumerate(pending):
        if action == "+":
            words[pos:pos] = text.split()
            shift = len(text.split())
        else:
            old, new = (text.split(), []) if action == "-" else (action.split(), text.split())
            starts = [i for i in range(len(words)) if words[i:i + len(old)] == old]
            assert starts, (old, words)
            words[starts[0]:starts[0] + len(old)] = new
            shift = len(new) - len(old)
        for later in pending[k + 1:]:
            later[2] += shift if later[2] >= pos else 0
    return " ".join(words)


def test_edit_action_rebuilds_the_target_prompt():
    records = sw.edit_records(300, 11, n_aspects=(1, 3))
    kinds = set()
    for r in records:
        assert _apply_edit_action(r["source_prompt"], r["edit_action"]) == r["target_prompt"], r["edit_action"]
        for v in r["edit_action"].values():
            if v["action"] not in ("+", "-"):  # a swap's source words name one place in the caption
                assert r["source_prompt"].count(v["action"]) == 1
        kinds |= {a["type"] for a in r["aspects"]}
    assert kinds == set(sw.EDIT_TYPES) - {"change_texture"}


def test_textured_edit_records_rebuild_and_are_exact():
    records = sw.edit_records(300, 12, n_aspects=(1, 3), textures=True)
    kinds = set()
    for r in records:
        assert _apply_edit_action(r["source_prompt"], r["edit_action"]) == r["target_prompt"], r["edit_action"]
        src, tgt = sw.render_edit(r)
        assert src.captions[0] == r["source_prompt"] and tgt.captions[0] == r["target_prompt"]
        assert tgt.captions[0] == sw.strip_brackets(r["editing_prompt"])
        changed = (src.images[0] != tgt.images[0]).any(-1)
        assert (changed <= sw.rle_decode(r["mask"], (32, 32), border=False)).all()
        for a in r["aspects"]:
            kinds.add(a["type"])
            if a["type"] == "change_texture":
                assert sw.Scene.from_dict(r["target_scene"]).objects[a["object"]].texture == a["target"]
    assert kinds == set(sw.EDIT_TYPES)
    with pytest.raises(ValueError, match="textures=True"):
        sw.edit_records(2, 0, edit_types=("change_texture",))


def test_texture_rendering_and_captions():
    plain = sw.ShapeObject("square", "red", "big", "left")
    checked = sw.ShapeObject("square", "red", "big", "left", "checked")
    a, b = (
        sw.render_scenes([sw.Scene("black", (plain,))]), sw.render_scenes([sw.Scene("black", (checked,))]))
    assert np.array_equal(a.masks, b.masks)
    assert b.captions[0] == "a big red checked square on the left on a black background"
    assert a.captions[0] == "a big red square on the left on a black background" and b.texture[0, 0] == 1
    m = b.masks[0, 0]
    dark = (sw.COLOUR_RGB[0] * sw.DARK_SHADE).astype(np.uint8)
    yy, xx = np.mgrid[0:32, 0:32]
    odd = ((yy // 2 + xx // 2) % 2 == 1)
    assert (b.images[0][m & odd] == dark).all() and (b.images[0][m & ~odd] == sw.COLOUR_RGB[0]).all()
    assert (a.images[0][m] == sw.COLOUR_RGB[0]).all()
    # textures off: the same random stream and scenes as before the attribute existed; on: both textures appear
    off, on = sw.generate(200, 3), sw.generate(200, 3, textures=True)
    assert (off.texture[off.shape >= 0] == 0).all() and set(on.texture[on.shape >= 0].tolist()) == {0, 1}
    assert np.array_equal(off.shape, on.shape) and np.array_equal(off.colour, on.colour)
    for i in range(len(on)):
        assert on.scene(i).caption() == on.captions[i] and set(on.captions[i].split()) <= set(sw.VOCABULARY)


def test_multi_object_records_put_aspects_on_distinct_objects_with_their_own_masks():
    records = sw.edit_records(200, 21, n_aspects=(2, 3), min_objects=2, max_objects=3)
    multi = 0
    for r in records:
        tsi = r["target_source_index"]
        objs = [("src", a["source_object"]) if a["type"] == "delete_object" else ("new", a["object"])
                if tsi[a["object"]] is None else ("src", tsi[a["object"]])
                for a in r["aspects"] if a["type"] != "change_background"]
        assert len(objs) == len(set(objs))  # one aspect per object (the background counts as its own)
        masks = [sw.rle_decode(a["mask"], (32, 32), border=False) for a in r["aspects"]]
        union = sw.rle_decode(r["mask"], (32, 32), border=False)
        assert np.array_equal(np.any(masks, axis=0), union) and all(m.any() for m in masks)
        multi += len(set(objs)) >= 2
    assert multi > 50  # many records edit two or more different objects


def test_bad_arguments():
    with pytest.raises(ValueError, match="min_objects"):
        sw.generate(4, 0, min_objects=2, max_objects=1)
    with pytest.raises(ValueError, match="same position"):
        sw.render_scenes([sw.Scene("gray", (sw.ShapeObject("circle", "red", "big", "left"),) * 2)])
