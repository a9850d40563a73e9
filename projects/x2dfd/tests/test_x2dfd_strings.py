"""The official prompt/answer strings (byte-exact) and the WFS threshold logic."""

from __future__ import annotations

import pytest

from x2dfd import prompts, sfs
from x2dfd.wfs import answer_supplement, expert_question, format_score


def test_binary_question_and_answers():
    assert prompts.human_turn() == "<image>\nIs this image real or fake?"
    assert prompts.compose_labeled_response("real") == "This image is real."
    assert prompts.compose_labeled_response("fake") == "This image is fake."
    assert prompts.compose_labeled_response("Deepfakes", "The eyes look wrong.") == \
        "This image is fake. The eyes look wrong."
    assert prompts.compose_labeled_response(" REAL ", "x") == "This image is real. x"


def test_explanation_prompt_is_label_conditioned():
    text = prompts.explanation_prompt("fake")
    assert text.startswith("You are an expert deepfake detector. Carefully examine the given face image")
    assert text.endswith("After checking, explain why these traces suggest the image is fake.")
    assert "{label}" not in text and prompts.explanation_prompt("real").endswith("the image is real.")
    assert "skin texture & tone (overly smooth or uneven, inconsistent color patches)" in text


def test_expert_question_strings():
    assert expert_question({}) == "<image>\nIs this image real or fake?"
    assert expert_question({"Blending": 0.8123}) == \
        "<image>\nIs this image real or fake? And the blending score is 0.812."
    assert expert_question({"Blending": 0.8125, "Diffusion": 0.15349}) == \
        "<image>\nIs this image real or fake? And the blending score is 0.812, and the diffusion score is 0.153."
    assert expert_question({"Blending": None}) == "<image>\nIs this image real or fake? And the blending score is N/A."
    # three experts: the official _format_multi_scores joins all but the last with ", " and the last with ", and "
    assert expert_question({"Blending": 0.5, "Diffusion": 0.25, "Aligner": None}) == (
        "<image>\nIs this image real or fake? And the blending score is 0.500, the diffusion score is 0.250, "
        "and the aligner score is N/A.")
    assert format_score(1) == "1.000" and format_score(0.0004) == "0.000" and format_score(None) == "N/A"


@pytest.mark.parametrize("label,score,expected", [
    ("fake", 0.70, " Additionally, the image shows obvious blending artifacts supporting fake."),
    ("fake", 0.95, " Additionally, the image shows obvious blending artifacts supporting fake."),
    ("fake", 0.6999, ""),
    ("fake", 0.10, ""),
    ("real", 0.30, " Additionally, the image shows very few blending artifacts supporting real."),
    ("real", 0.02, " Additionally, the image shows very few blending artifacts supporting real."),
    ("real", 0.3001, ""),
    ("real", 0.90, ""),
    ("fake", None, ""),
])
def test_answer_supplement_thresholds(label, score, expected):
    assert answer_supplement(label, {"Blending": score}) == expected


def test_answer_supplement_two_experts_and_custom_thresholds():
    both = {"Blending": 0.9, "Diffusion": 0.8}
    # official multi-expert supporters: "a and b" for two, "a, b, and c" for three (train/pipeline.py @ 0b4eb31)
    assert answer_supplement("fake", both) == \
        " Additionally, the image shows obvious blending and diffusion artifacts supporting fake."
    assert answer_supplement("real", {"Blending": 0.1, "Diffusion": 0.2, "Aligner": 0.0}) == \
        " Additionally, the image shows very few blending, diffusion, and aligner artifacts supporting real."
    assert answer_supplement("fake", {"Blending": 0.9, "Diffusion": 0.5}) == \
        " Additionally, the image shows obvious blending artifacts supporting fake."
    assert answer_supplement("fake", {"Blending": 0.55}, lo=0.2, hi=0.5) != ""


def test_sft_item_format():
    item = sfs.build_item("fake", "The nose looks unnatural.", {"Blending": 0.91})
    assert item["conversations"] == [
        {"from": "human", "value": "<image>\nIs this image real or fake? And the blending score is 0.910."},
        {"from": "gpt", "value": "This image is fake. The nose looks unnatural. Additionally, the image shows "
                                 "obvious blending artifacts supporting fake."}]
    plain = sfs.build_item("real", "")
    assert plain["conversations"][0]["value"] == "<image>\nIs this image real or fake?"
    assert plain["conversations"][1]["value"] == "This image is real."


def test_templated_explanation():
    top = [{"region": "eyes", "yes": "E+.", "no": "E-."}, {"region": "blend", "yes": "B+.", "no": "B-."},
           {"region": "nose", "yes": "N+.", "no": "N-."}]
    assert sfs.templated_explanation("real", top) == "E-. B-. N-."
    assert sfs.templated_explanation("fake", top, ("nose",)) == "N+."
    assert sfs.templated_explanation("fake", top, ("skin", "eyes")) == "E+. B+."
    assert sfs.templated_explanation("fake", top, ("mouth",)) == "E+."  # nothing applies: the best feature


def test_assessed_explanation_follows_the_models_answers():
    top = [{"region": "eyes", "yes": "E+.", "no": "E-."}, {"region": "blend", "yes": "B+.", "no": "B-."},
           {"region": "nose", "yes": "N+.", "no": "N-."}]
    # fake: the features the model answers yes to, most confident first
    assert sfs.assessed_explanation("fake", top, [0.6, 0.9, 0.2]) == ("B+. E+.", False)
    # real: the features the model answers no to, most confident first
    assert sfs.assessed_explanation("real", top, [0.6, 0.9, 0.2]) == ("N-.", False)
    # no answer agrees with the label: the label-conditioned prompt forces the most inclined one
    assert sfs.assessed_explanation("fake", top, [0.1, 0.3, 0.2]) == ("B+.", True)
    assert sfs.assessed_explanation("real", top, [0.7, 0.9, 0.8]) == ("E-.", True)
    with pytest.raises(ValueError):
        sfs.assessed_explanation("fake", top, [0.5])
