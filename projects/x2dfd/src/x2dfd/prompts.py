"""The official X²-DFD prompt and answer strings (github.com/chenyize111/X2DFD @ 0b4eb31).

Byte-exact copies of the strings in ``datasets/prompts/prompt.json``, ``utils/annotation_utils.py``
(``build_binary_question``, ``compose_labeled_response``) and the LLaVA ``llava_v1`` conversation template that
the official training (``--version v1``) and inference use.
"""

from __future__ import annotations

IMAGE_TOKEN = "<image>"
BINARY_QUESTION = "Is this image real or fake?"
"""``build_binary_question()``: the detection question of every training and test item."""

EXPLANATION_PROMPT = (
    "You are an expert deepfake detector. Carefully examine the given face image and focus on trace-based clues: "
    "eyes (unnatural reflections, missing eyelashes, blurred details), facial geometry/layout (misplaced or "
    "asymmetric features such as lips, nose, jawline), skin texture & tone (overly smooth or uneven, inconsistent "
    "color patches), lighting & shadows (strange highlights or missing/inconsistent shadows), and edges & contours "
    "(overly sharp or smooth boundaries, unnatural blending with neck or background). After checking, explain why "
    "these traces suggest the image is {label}."
)
"""``datasets/prompts/prompt.json``: the label-conditioned prompt with which the base MLLM writes explanations."""

LLAVA_V1_SYSTEM = (
    "A chat between a curious human and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the human's questions."
)
"""System line of LLaVA's ``conv_vicuna_v1`` (``llava_v1``) template; turns are ``USER: ...`` / ``ASSISTANT: ...``."""

ANSWER_PREFIX = "This image is"
"""The answer opens with "This image is real." / "This image is fake."; P(fake) is read at the next token."""


def explanation_prompt(label: str) -> str:
    """The SFS prompt for one training image: ``{label}`` replaced by the ground-truth ``"real"``/``"fake"``."""
    return EXPLANATION_PROMPT.format(label=normalize_label(label))


def normalize_label(label: str) -> str:
    """Official ``normalize_label``: ``"real"`` stays real, anything else is fake."""
    return "real" if (label or "").strip().lower() == "real" else "fake"


def compose_labeled_response(label: str, explanation: str = "") -> str:
    """Official ``compose_labeled_response``: ``"This image is real."``/``"This image is fake."`` plus a space and
    the explanation when there is one."""
    prefix = f"{ANSWER_PREFIX} {normalize_label(label)}."
    return f"{prefix} {explanation}" if explanation else prefix


def human_turn(question: str = BINARY_QUESTION) -> str:
    """The human turn of an item: ``"<image>\\n" + question``."""
    return f"{IMAGE_TOKEN}\n{question}"


def conversation(human: str, answer: str | None = None) -> str:
    """The ``llava_v1`` rendering of one exchange: ``"{system} USER: {human} ASSISTANT:"`` and, when ``answer`` is
    given, ``" {answer}"`` (the end-of-sequence token is appended by the tokenizer wrapper)."""
    text = f"{LLAVA_V1_SYSTEM} USER: {human} ASSISTANT:"
    return text if answer is None else f"{text} {answer}"
