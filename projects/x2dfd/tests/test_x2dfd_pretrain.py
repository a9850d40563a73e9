"""Attribute-caption pre-training data: generic edits touch only their region; captions follow the cues."""

from __future__ import annotations

import numpy as np
import pytest

from shared.data import faces_synth as fs
from x2dfd import mfa, pretrain


@pytest.fixture(scope="module")
def face():
    b = fs.make_dataset(1, 1, ("real",), size=64, seed=3)
    return b.images[0], {k: v[0] for k, v in b.regions.items()}


@pytest.mark.parametrize("kind", pretrain.EDIT_KINDS)
def test_edits_change_the_region_only(face, kind):
    image, regions = face
    region = pretrain.EDIT_REGIONS[kind][0]
    out = pretrain.apply_edit(image, regions, kind, region, np.random.default_rng(0))
    assert out.dtype == np.uint8 and out.shape == image.shape
    diff = np.abs(out.astype(int) - image.astype(int)).sum(-1) > 0
    assert diff.any()
    import cv2

    face_mask = np.any([regions[k] for k in regions], axis=0).astype(np.uint8)
    near = cv2.dilate(face_mask, np.ones((11, 11), np.uint8)) > 0  # edits stay on (or just around) the face
    assert not diff[~near].any()
    with pytest.raises(ValueError, match="edit kind"):
        pretrain.apply_edit(image, regions, "melt", "eyes", np.random.default_rng(0))


def test_question_cues_and_balanced_captions():
    bank = mfa.load_question_bank()
    assert all(q.get("cues") for q in bank)
    blur_eyes = [q["feature"] for q in bank if pretrain.question_matches(q, "blur", "eyes")]
    assert "Are the eyes blurred or lacking detail?" in blur_eyes and "Is the face color unusual?" not in blur_eyes
    assert "Are the facial features misplaced?" in [
        q["feature"] for q in bank if pretrain.question_matches(q, "shift", "nose")]  # "shift:*"
    assert not any(pretrain.question_matches(q, None, None) for q in bank)
    data = pretrain.CaptionSet(np.zeros((3, 8, 8, 3), np.uint8), [("blur", "eyes"), (None, None), ("light", "face")])
    items = pretrain.caption_items(data, bank, 6, np.random.default_rng(0))
    assert [i for i, _ in items] == [0, 1, 2]
    for i, (kind, region) in enumerate(data.edits):
        mine = items[i][1]
        yes = [q for q, a in mine if a == "Yes."]
        assert len(yes) == (3 if kind else 0) and len(mine) - len(yes) == 3
        by_text = {q["question"]: q for q in bank}
        assert all(pretrain.question_matches(by_text[q], kind, region) == (a == "Yes.") for q, a in mine)


def test_dialogue_encoding_supervises_every_answer():
    from x2dfd.mllm import IGNORE_INDEX, MLLM, TinyLlavaConfig
    from x2dfd.pipeline import corpus

    m = MLLM.tiny(corpus(mfa.load_question_bank()), TinyLlavaConfig(vision="clip", image_size=32, vision_hidden=32,
                                                                    text_hidden=32, heads=2))
    enc = m.encode_dialogues([[("<image>\nIs the face color unusual?", "Yes."), ("Is the jawline unnatural?", "No.")]])
    ids, labels = enc["input_ids"][0], enc["labels"][0]
    assert int((ids == m.image_token_id).sum()) == 16
    assert m.tokenizer.decode(labels[labels != IGNORE_INDEX]) == "yes . </s> no . </s>"
    text = m.tokenizer.decode(ids)
    assert "assistant : yes . </s> user : is the jawline unnatural ? assistant : no . </s>" in text
    with pytest.raises(ValueError, match="first question"):
        m.encode_dialogues([[("no image here", "Yes.")]])
