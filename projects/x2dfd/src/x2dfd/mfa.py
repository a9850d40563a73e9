"""MFA (Model Feature Assessment): score each candidate forgery feature by how well the MLLM detects it.

Each feature is a yes/no question ("... Answer Yes or No.", as the official ``datasets/prompts/question.json``).
Official ranking (``rank_questions.py`` @ b9acb03, ``qa_accuracy.py`` @ 9b8b647): per question,
``balanced_acc = (fake_yes_rate + real_no_rate) / 2``, sorted in descending order, top-k kept.
"""

from __future__ import annotations

import json
from importlib import resources

import numpy as np


def load_question_bank(path: str | None = None) -> list[dict]:
    """The candidate features: a list of ``{"question", "feature", "region", "yes", "no"}`` dicts.

    ``question`` is what the MLLM is asked; ``yes``/``no`` are the statements SFS uses when the feature is present /
    absent; ``region`` is the face part it is about. Default: the 24 questions shipped in ``x2dfd/questions.json``
    (written by us in the style of the official 100)."""
    text = open(path).read() if path else resources.files("x2dfd").joinpath("questions.json").read_text()
    bank = json.loads(text)
    for i, q in enumerate(bank):
        missing = {"question", "feature", "region", "yes", "no"} - set(q)
        if missing:
            raise ValueError(f"question {i} of the bank lacks keys {sorted(missing)}")
    return bank


def balanced_accuracy(answered_yes: np.ndarray, is_fake: np.ndarray) -> np.ndarray:
    """(fake answered yes rate + real answered no rate) / 2 per question; ``answered_yes`` is (Q, N) bool."""
    answered_yes = np.asarray(answered_yes, bool)
    is_fake = np.asarray(is_fake, bool)
    if answered_yes.ndim != 2 or answered_yes.shape[1] != is_fake.shape[0]:
        raise ValueError(f"answers must be (questions, images) with images = {is_fake.shape[0]}, "
                         f"got {answered_yes.shape}")
    if is_fake.all() or not is_fake.any():
        raise ValueError("balanced accuracy needs both real and fake images")
    fake_yes = answered_yes[:, is_fake].mean(1)
    real_no = (~answered_yes[:, ~is_fake]).mean(1)
    return (fake_yes + real_no) / 2


def rank_features(p_yes, is_fake, threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Rank questions by balanced accuracy, best first.

    Args:
        p_yes: (questions, images) array of the MLLM's P(yes).
        is_fake: (images,) boolean labels.
        threshold: an answer is "yes" when ``P(yes) >= threshold`` (the official fallback ``prob_yes >= prob_no``
            is ``threshold = 0.5``).

    Returns:
        ``(order, accuracy)``: question indices in rank order (ties keep the bank order) and their balanced
        accuracies, descending.
    """
    p_yes = np.asarray(p_yes, dtype=np.float64)
    bacc = balanced_accuracy(p_yes >= threshold, np.asarray(is_fake, bool))
    order = np.argsort(-bacc, kind="stable")
    return order, bacc[order]


def assess(mllm, images: np.ndarray, is_fake: np.ndarray, bank: list[dict], batch_size: int = 64):
    """Ask the MLLM every question on every image. Returns P(yes) as a (questions, images) array."""
    return np.stack([mllm.p_yes(images, q["question"], batch_size=batch_size) for q in bank])
