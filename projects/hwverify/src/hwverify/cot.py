"""The zero-shot chain-of-thought protocol of VLM-HV (github.com/Abhishek0057/vlm-hv, ``code/``).

Two turns with a chat-completions model ("gpt-4o" in the paper):

1. system ``You are a Forensic Document Examiner.``; user: the explanation prompt, both images inlined as
   base64 text (:func:`explanation_prompt`); the answer is the *explanation*, requested at temperature 0;
2. the explanation is appended as the assistant turn, then the user asks for the decision
   (:func:`decision_prompt`, default temperature); :func:`parse_decision` maps the answer to
   Yes / No / Unknown / Both. The scripts drop the rows whose decision is Unknown.

The prompt strings are the scripts' f-strings byte for byte, including their leading newline and the four
spaces of source indentation on every line.

Two transports carry the images (:data:`TRANSPORTS`):

* ``official`` -- as published: each image file is base64-encoded and pasted into the prompt *text*. The
  model receives a string of base64 characters, not an image: a chat model's vision encoder only sees
  image parts, so whatever the published 70 % measures, it is not a comparison of the pixels.
* ``image_url`` -- the same words, but each ``{image}`` slot becomes an image part (a PNG ``data:`` URL in
  an OpenAI ``image_url`` content part) between the text parts, so a vision model actually sees both
  samples. This is the variant that tests vision. The AND script is ``parallel_chatgpt_api_invocation``; the
CEDAR Letter script (``invoke_chatgpt_api.py``) words both prompts differently and thumbnails images to at
most 800 px (:data:`LETTER`).

:class:`ChatClient` talks to any OpenAI-compatible ``/chat/completions`` endpoint with the standard library;
it is opt-in (``HWVERIFY_CHAT_BASE_URL`` / ``HWVERIFY_CHAT_MODEL`` / ``OPENAI_API_KEY`` from the environment)
and never used by the tests.
"""

from __future__ import annotations

import base64
import json
import os
import re
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

SYSTEM_PROMPT = "You are a Forensic Document Examiner."


@dataclass(frozen=True)
class PromptSet:
    """The two user turns and the sampling temperatures of one official script."""

    explanation: str
    decision: str
    explanation_temperature: float | None
    max_image_side: int | None


AND = PromptSet(
    explanation=(
        "\n    You are a Forensic Document Examiner. You will be provided with two handwritten samples of the "
        "lowercase word \"and\". Your task is to provide a explanation if the two handwritten samples are written "
        "by the same writer or by different writers as follows:\n\n    - \"Explanation\" : \n\n"
        "    Handwriting sample 1:\n    {image1}\n\n    Handwriting sample 2:\n    {image2}\n    "
    ),
    decision=(
        "\n    Based on the explanation below, what is the decision Yes or No or Unknown? Handwriting written by "
        "same writer means Yes and different writer means No else its unknown.\n    "
    ),
    explanation_temperature=0.0,
    max_image_side=None,
)
"""CEDAR AND (``parallel_chatgpt_api_invocation``): explanation at temperature 0, images as stored."""

LETTER = PromptSet(
    explanation=(
        "\n    You are a Forensic Document Examiner. You will be provided with two handwritten samples images. "
        "Your task is to provide a explanation comparing two handwritten samples are written by the same writer "
        "or by different writers as follows:\n\n    - \"Explanation\" : \n\n"
        "    Handwriting sample 1:\n    {image1}\n\n    Handwriting sample 2:\n    {image2}\n    "
    ),
    decision="\n    Based on the explanation, what is the decision?\n    ",
    explanation_temperature=None,
    max_image_side=800,
)
"""CEDAR Letter (``invoke_chatgpt_api.py``): default temperature, images thumbnailed to 800 px."""

_UNKNOWN = re.compile(r"\bUnknown\b", re.IGNORECASE)
_YES = re.compile(r"\bYes\b", re.IGNORECASE)
_NO = re.compile(r"\bNo\b", re.IGNORECASE)


def parse_decision(text: str) -> str:
    """The official decision parser (``determine_decision``): whole-word, case-insensitive matches.

    "Unknown" anywhere -> ``"Unknown"``; otherwise only "Yes" -> ``"Yes"``, only "No" -> ``"No"``, neither ->
    ``"Unknown"``, both -> ``"Both"``.
    """
    if _UNKNOWN.search(text):
        return "Unknown"
    yes, no = _YES.search(text) is not None, _NO.search(text) is not None
    if yes and not no:
        return "Yes"
    if no and not yes:
        return "No"
    return "Unknown" if not yes else "Both"


TRANSPORTS = ("official", "image_url")
"""How the images travel: base64 text in the prompt (the scripts) or image content parts."""


def encode_image_base64(image: np.ndarray | Path, max_side: int | None = None) -> str:
    """Base64 of an image: a file's own bytes, as the AND script sends them (``load_image_as_base64``), or a
    scan array as PNG; with ``max_side`` the image is thumbnailed first (aspect kept; the Letter script)."""
    if isinstance(image, (str, Path)):
        if max_side is None:
            return base64.b64encode(Path(image).read_bytes()).decode("utf-8")
        array = cv2.imread(str(image), cv2.IMREAD_UNCHANGED)
        if array is None:
            raise ValueError(f"cannot read image '{image}'")
        return encode_png_base64(array, max_side)
    return encode_png_base64(image, max_side)


def encode_png_base64(image: np.ndarray, max_side: int | None = None) -> str:
    """A scan (float in [0, 1] or uint8) as base64 PNG text, optionally thumbnailed (aspect kept)."""
    img = np.asarray(image)
    if img.dtype != np.uint8:
        img = (np.clip(img, 0, 1) * 255).round().astype(np.uint8)
    if max_side is not None and max(img.shape[:2]) > max_side:
        f = max_side / max(img.shape[:2])
        img = cv2.resize(img, (max(1, int(img.shape[1] * f)), max(1, int(img.shape[0] * f))),
                         interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".png", img)
    if not ok:
        raise ValueError(f"could not encode an image of shape {img.shape} as PNG")
    return base64.b64encode(buf.tobytes()).decode("ascii")


def explanation_messages(image1_b64: str, image2_b64: str, prompts: PromptSet = AND) -> list[dict]:
    """Turn 1: the system message and the explanation prompt with both images inlined as base64 text."""
    return [{"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": prompts.explanation.format(image1=image1_b64, image2=image2_b64)}]


def explanation_messages_image_url(image1_b64: str, image2_b64: str, prompts: PromptSet = AND) -> list[dict]:
    """Turn 1 with the images as content parts: the explanation prompt's text, split at ``{image1}`` and
    ``{image2}``, with a PNG ``image_url`` part in each slot (text parts byte-identical to the official ones)."""
    before, rest = prompts.explanation.split("{image1}")
    between, after = rest.split("{image2}")
    parts: list[dict] = [{"type": "text", "text": before},
                         {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{image1_b64}"}},
                         {"type": "text", "text": between},
                         {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{image2_b64}"}}]
    if after:
        parts.append({"type": "text", "text": after})
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": parts}]


def decision_messages(history: list[dict], explanation: str, prompts: PromptSet = AND) -> list[dict]:
    """Turn 2: the history, the explanation as the assistant's turn, then the decision prompt."""
    return [*history, {"role": "assistant", "content": explanation}, {"role": "user", "content": prompts.decision}]


Chat = Callable[[list[dict], float | None], str]
"""A chat function: (messages, temperature or None for the server default) -> the assistant's text."""


def verify_pair(chat: Chat, image1: np.ndarray | Path, image2: np.ndarray | Path, prompts: PromptSet = AND,
                transport: str = "official") -> dict[str, str]:
    """Run the two-turn protocol on one pair; returns explanation, raw decision text and parsed decision.

    ``image1``/``image2`` are the original files (their bytes are sent, as the scripts do) or uint8 scans.
    ``transport``: ``official`` (base64 text in the prompt) or ``image_url`` (image content parts, PNG).
    """
    if transport == "official":
        first = explanation_messages(encode_image_base64(image1, prompts.max_image_side),
                                     encode_image_base64(image2, prompts.max_image_side), prompts)
    elif transport == "image_url":  # a data: URL says PNG, so files are decoded and re-encoded as PNG
        pngs = [encode_png_base64(cv2.imread(str(x), cv2.IMREAD_UNCHANGED) if isinstance(x, (str, Path)) else x,
                                  prompts.max_image_side) for x in (image1, image2)]
        first = explanation_messages_image_url(*pngs, prompts)
    else:
        raise ValueError(f"transport must be one of {TRANSPORTS}, got {transport!r}")
    explanation = chat(first, prompts.explanation_temperature)
    answer = chat(decision_messages(first, explanation, prompts), None)
    return {"explanation": explanation, "decision_text": answer, "decision": parse_decision(answer)}


def run_protocol(chat: Chat, images, pairs: np.ndarray, prompts: PromptSet = AND,
                 transport: str = "official") -> list[dict]:
    """The protocol over ``pairs`` (rows i, j, label); ``images[k]`` is sample k's original file or uint8 scan.
    Every row is returned, Unknown included, so that both accountings
    (:func:`hwverify.metrics.decision_metrics`) can be computed."""
    rows = []
    for i, j, label in np.asarray(pairs).tolist():
        rows.append({"i": i, "j": j, "label": label,
                     **verify_pair(chat, images[i], images[j], prompts, transport)})
    return rows


class ChatClient:
    """A minimal OpenAI-compatible chat-completions client (standard library only).

    Args:
        base_url: e.g. ``https://api.openai.com/v1`` or a local server (``http://localhost:8000/v1``).
        model: model name sent in the payload (the paper: ``gpt-4o``).
        api_key: bearer token; ``None`` sends no Authorization header (local servers).
    """

    def __init__(self, base_url: str, model: str = "gpt-4o", api_key: str | None = None, timeout: float = 300.0):
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model, self.api_key, self.timeout = model, api_key, timeout

    @classmethod
    def from_env(cls) -> ChatClient | None:
        """The client configured by ``HWVERIFY_CHAT_BASE_URL`` (+ ``HWVERIFY_CHAT_MODEL``, ``OPENAI_API_KEY``),
        or None when no base URL is set (the protocol is then reported as not run)."""
        base = os.environ.get("HWVERIFY_CHAT_BASE_URL")
        if not base:
            return None
        return cls(base, os.environ.get("HWVERIFY_CHAT_MODEL", "gpt-4o"), os.environ.get("OPENAI_API_KEY"))

    def payload(self, messages: Sequence[dict], temperature: float | None) -> dict:
        """The official ``build_payload``: temperature only when given."""
        body = {"model": self.model, "messages": list(messages)}
        if temperature is not None:
            body["temperature"] = temperature
        return body

    def __call__(self, messages: list[dict], temperature: float | None = None) -> str:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(self.url, data=json.dumps(self.payload(messages, temperature)).encode(),
                                         headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                data = json.loads(response.read().decode())
        except urllib.error.HTTPError as err:
            raise RuntimeError(f"chat endpoint {self.url} answered {err.code}: {err.read()[:500]!r}") from err
        return data["choices"][0]["message"]["content"]
