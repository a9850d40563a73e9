"""SFS (Strong Feature Strengthening): the explainable fine-tuning set in LLaVA conversation format.

Official (``eval/tools/feature_annotation.py``, ``train/pipeline.py::_merge_annotations``,
``utils/annotation_utils.py`` @ 0b4eb31): the base MLLM writes an explanation for every training image from the
label-conditioned prompt; each item becomes ``{"id", "image", "conversations": [human, gpt]}`` with
human = ``"<image>\\nIs this image real or fake?"`` (+ the WFS score tail) and gpt = ``"This image is {label}."``
+ explanation (+ the WFS supplement); items are shuffled and renumbered 1..N.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from x2dfd.prompts import compose_labeled_response, human_turn, normalize_label
from x2dfd.wfs import answer_supplement, expert_question

REGION_OF_MANIPULATED = {"eyes": "eyes", "brows": "brows", "nose": "nose", "mouth": "mouth", "lips": "mouth",
                         "skin": "skin"}


def templated_explanation(label: str, top_features: Sequence[dict], touched_regions: Sequence[str] = ()) -> str:
    """Deterministic fallback explanation from the top-ranked features.

    Real: the "absent" statements of the top features. Fake: the "present" statements of the top features whose
    region was touched by the manipulation (blending/lighting/geometry features count for whole-face
    manipulations); if none applies, the best feature's "present" statement."""
    if normalize_label(label) == "real":
        return " ".join(f["no"] for f in top_features)
    touched = {REGION_OF_MANIPULATED.get(r, r) for r in touched_regions}
    whole_face = "skin" in touched
    chosen = [f for f in top_features if f["region"] in touched or (whole_face and f["region"] in
                                                                    ("blend", "light", "geometry"))]
    return " ".join(f["yes"] for f in (chosen or list(top_features[:1])))


def assessed_explanation(label: str, top_features: Sequence[dict], p_yes: Sequence[float],
                         threshold: float = 0.5) -> tuple[str, bool]:
    """The explanation of one training image from the base MLLM's own answers to the MFA top-k questions.

    The offline stand-in for the official step in which the base MLLM writes the explanation itself from the
    label-conditioned prompt ("explain why these traces suggest the image is {label}"): the features are those
    MFA ranked highest, and the base model's P(yes) for *this* image decides which statements are said.
    Fake: the "present" statements of the top features the model answers yes to (highest P(yes) first); real:
    the "absent" statements of those it answers no to (lowest P(yes) first). When the model's answers give no
    statement consistent with the label, the label conditioning forces one, as the official prompt does: the
    feature the model is most inclined to answer that way. Returns ``(text, forced)``.
    """
    p = np.asarray(p_yes, dtype=np.float64)
    if len(p) != len(top_features) or not len(p):
        raise ValueError(f"{len(p)} answers for {len(top_features)} features")
    if normalize_label(label) == "fake":
        order = np.argsort(-p, kind="stable")
        said = [i for i in order if p[i] >= threshold]
        return " ".join(top_features[i]["yes"] for i in (said or order[:1])), not said
    order = np.argsort(p, kind="stable")
    said = [i for i in order if p[i] < threshold]
    return " ".join(top_features[i]["no"] for i in (said or order[:1])), not said


def build_item(label: str, explanation: str, scores: dict[str, float] | None = None, image: str = "",
               lo: float = 0.3, hi: float = 0.7) -> dict:
    """One LLaVA conversation item; with ``scores`` the WFS question tail and answer supplement are added."""
    human = expert_question(scores) if scores else human_turn()
    gpt = compose_labeled_response(label, explanation)
    if scores:
        gpt += answer_supplement(label, scores, lo, hi)
    return {"id": "0", "image": image, "conversations": [{"from": "human", "value": human},
                                                           {"from": "gpt", "value": gpt}]}


def build_dataset(labels: Sequence[str], explanations: Sequence[str], scores: Sequence[dict] | None,
                  images: Sequence[str], rng: np.random.Generator) -> list[dict]:
    """Items for every image, shuffled and renumbered ``"1"..."N"`` (official merge)."""
    items = [build_item(lbl, exp, scores[i] if scores is not None else None, images[i])
             for i, (lbl, exp) in enumerate(zip(labels, explanations))]
    order = rng.permutation(len(items))
    items = [items[i] for i in order]
    for k, item in enumerate(items, start=1):
        item["id"] = str(k)
    return items
