"""Base-MLLM pre-training on attribute captions: what the tiny LLaVA knows before X²-DFD starts.

X²-DFD starts from LLaVA-1.5-7B, whose CLIP tower and LLM were trained on web image-text data: it can already
tell a blurred eye or an odd skin colour from a normal one, but it has never been trained to detect deepfakes
(arXiv 2410.06126, Sec. 3.1: MFA measures exactly this prior knowledge). A randomly initialised tiny LLaVA knows
nothing, so MFA on it ranks noise. This module gives the offline base model a comparable prior:

* the vision tower is the frozen ImageNet EfficientNet-Lite0 (:func:`x2dfd.mllm.lite0_features`);
* the projector and the LLM are trained on **attribute captions** of faces that are *not* deepfakes: real
  procedural faces (identities and families disjoint from X²-DFD's train/test faces) with one generic,
  region-level image edit of a known kind -- blur, colour shift, displacement, hard-edged paste, lighting
  gradient or noise -- on a known region (eyes, brows, nose, mouth, skin / whole face), or none. Each image is
  asked some of the MFA questions; the answer is ``"Yes. {statement}"`` when the question's cue (``cues`` in
  ``questions.json``, e.g. ``"blur:eyes"``) matches the edit, else ``"No. {statement}"``.

The edits are image-processing operations, not face manipulations: no identity swap, warp, self-blend or
local blend of a donor face is ever shown, so the base model has visual vocabulary but no deepfake training.
Which of its skills transfer to the forgeries is then what MFA measures on the X²-DFD training set.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

EDIT_KINDS: tuple[str, ...] = ("blur", "color", "shift", "boundary", "light", "noise")
EDIT_REGIONS: dict[str, tuple[str, ...]] = {
    "blur": ("eyes", "nose", "mouth", "skin"),
    "color": ("eyes", "nose", "mouth", "skin"),
    "shift": ("eyes", "brows", "nose", "mouth"),
    "boundary": ("face",),
    "light": ("face",),
    "noise": ("skin",),
}
"""Which regions each edit kind is applied to (``face`` = every region together)."""
PRETRAIN_IDENTITIES = range(60, 100)
"""Identities of the pre-training faces (X²-DFD trains on 0-29 and tests on 30-39)."""


def _soft(mask: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    return cv2.GaussianBlur(mask.astype(np.float32), (0, 0), sigma)[..., None]


def apply_edit(image: np.ndarray, regions: dict[str, np.ndarray], kind: str, region: str,
               rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    """One generic edit of ``kind`` on ``region`` of a uint8 (H, W, 3) face; ``regions`` are its bool masks.
    ``strength`` in (0, 1] scales the edit (1 = clearly visible; small values are subtle)."""
    img = image.astype(np.float32)
    a = float(strength)
    face = np.any([regions[k] for k in ("eyes", "brows", "nose", "mouth", "lips", "skin")], axis=0)
    mask = face if region == "face" else (regions[region] | regions["lips"] if region == "mouth" else regions[region])
    if kind == "blur":
        m = _soft(mask)
        out = m * cv2.GaussianBlur(img, (0, 0), 0.3 + a * rng.uniform(0.9, 1.7)) + (1 - m) * img
    elif kind == "color":
        out = img + _soft(mask) * rng.choice([-1, 1], 3) * a * rng.uniform(35, 70, 3)
    elif kind == "shift":
        d = rng.choice([-1, 1], 2) * np.maximum(1.0, a * rng.uniform(2, 4, 2))
        warp = np.float32([[1, 0, d[0]], [0, 1, d[1]]])
        h, w = mask.shape
        moved = cv2.warpAffine(img, warp, (w, h), borderMode=cv2.BORDER_REFLECT)
        m = _soft(cv2.warpAffine(mask.astype(np.float32), warp, (w, h)) > 0.5, 0.7)
        out = m * moved + (1 - m) * img
    elif kind == "boundary":  # a hard-edged paste with a tone offset: a visible seam along the face contour
        m = mask[..., None].astype(np.float32)
        gain = 1 + rng.choice([-1, 1]) * a * rng.uniform(0.1, 0.25)
        out = m * img * gain + (1 - m) * img
    elif kind == "light":  # a strong linear lighting gradient across the face
        h, w = mask.shape
        a = rng.uniform(0, 2 * np.pi)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        g = ((xx - w / 2) * np.cos(a) + (yy - h / 2) * np.sin(a)) / (w / 2)
        out = img * (1 + _soft(mask) * a * rng.uniform(0.35, 0.6) * g[..., None])
    elif kind == "noise":
        out = img + _soft(mask) * rng.normal(0, a * rng.uniform(14, 24), img.shape)
    else:
        raise ValueError(f"unknown edit kind {kind!r}; expected one of {EDIT_KINDS}")
    return np.clip(out, 0, 255).round().astype(np.uint8)


def question_matches(question: dict, kind: str | None, region: str | None) -> bool:
    """True when one of the question's cues (``"kind:region"``; region ``*`` = any) names this edit."""
    if kind is None:
        return False
    for cue in question.get("cues", ()):
        k, r = cue.split(":")
        if k == kind and r in ("*", region):
            return True
    return False


@dataclass
class CaptionSet:
    images: np.ndarray  # uint8 (N, S, S, 3)
    edits: list[tuple[str | None, str | None]]  # (kind, region) per image; (None, None) = unedited


def caption_images(n: int, size: int, seed: int, families: Sequence[str] = ("toon", "lfw"),
                   p_none: float = 0.3) -> CaptionSet:
    """``n`` real faces of the pre-training identities, each with one random edit (or none with ``p_none``)."""
    from shared.data import faces_synth as fs

    rng = np.random.default_rng([seed, 7919])
    batch = fs.make_dataset(n, 1, ("real",), tuple(families), size, seed + 101, PRETRAIN_IDENTITIES,
                            video_offset=90_000)
    images = batch.images.copy()
    edits: list[tuple[str | None, str | None]] = []
    for i in range(n):
        if rng.random() < p_none:
            edits.append((None, None))
            continue
        kind = str(rng.choice(EDIT_KINDS))
        region = str(rng.choice(EDIT_REGIONS[kind]))
        images[i] = apply_edit(images[i], {k: v[i] for k, v in batch.regions.items()}, kind, region, rng,
                               strength=rng.uniform(0.3, 1.0))
        edits.append((kind, region))
    return CaptionSet(images, edits)


def caption_items(data: CaptionSet, bank: list[dict], per_image: int, rng: np.random.Generator):
    """One conversation per image, balanced between yes and no: an edited image is asked ``per_image // 2``
    questions whose cue matches its edit (answer ``"Yes."``, repeated if fewer match) and as many others
    (``"No."``), in random order; an unedited image ``per_image // 2`` random questions (``"No."``).
    Returns ``[(image index, [(question, answer), ...]), ...]``."""
    out = []
    half = max(1, per_image // 2)
    for i, (kind, region) in enumerate(data.edits):
        yes = [q for q in bank if question_matches(q, kind, region)]
        no = [q for q in bank if not question_matches(q, kind, region)]
        turns = []
        if yes:
            turns += [(yes[j]["question"], "Yes.") for j in rng.choice(len(yes), half, replace=len(yes) < half)]
        turns += [(no[j]["question"], "No.") for j in rng.choice(len(no), half, replace=False)]
        out.append((i, [turns[j] for j in rng.permutation(len(turns))]))
    return out


def pretrain(mllm, bank: list[dict], cfg, seed: int, log=print, quiet: bool = True) -> dict:
    """Train the tiny LLaVA's projector and LLM on attribute captions (vision tower frozen), one multi-turn
    conversation per image as in LLaVA's instruction data (the question of the first turn holds the image).
    Returns the loss per epoch and the balanced yes/no accuracy on held-out caption images (a check that the
    base model learned its prior)."""
    import torch

    from shared.runs import guard_finite, progress
    from x2dfd.prompts import human_turn

    rng = np.random.default_rng([seed, 31337])
    data = caption_images(cfg.n_images, mllm.image_size, seed)
    held = caption_images(max(32, cfg.n_images // 8), mllm.image_size, seed + 5000)
    items = caption_items(data, bank, cfg.questions_per_image, rng)
    px = mllm.pixel_values(data.images)
    model = mllm.model
    params = [p for n, p in model.named_parameters() if "vision_tower" not in n]
    for n, p in model.named_parameters():
        p.requires_grad_("vision_tower" not in n)
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    steps = int(np.ceil(len(items) / cfg.batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=steps * cfg.epochs, pct_start=0.05)
    history = []
    for epoch in range(cfg.epochs):
        model.train()
        order = rng.permutation(len(items))
        losses = []
        for s in progress(range(steps), desc=f"pre-train epoch {epoch + 1}/{cfg.epochs}", quiet=quiet):
            b = [items[j] for j in order[s * cfg.batch_size : (s + 1) * cfg.batch_size]]
            dialogues = [[(human_turn(t[0][0]), t[0][1]), *t[1:]] for _, t in b]
            loss = mllm.dialogue_loss(px[[i for i, _ in b]], dialogues)
            guard_finite(epoch * steps + s + 1, pretrain_loss=loss)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
        history.append(float(np.mean(losses)))
        log(f"pre-train epoch {epoch + 1}/{cfg.epochs}: caption loss {history[-1]:.4f}")
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    # held-out check: P(yes) >= 0.5 against the cue on unseen caption images, balanced over yes/no truths
    truth = np.array([[question_matches(q, k, r) for k, r in held.edits] for q in bank])
    said = np.stack([mllm.p_yes(held.images, q["question"]) for q in bank]) >= 0.5
    bacc = 0.5 * (said[truth].mean() + (~said[~truth]).mean())
    log(f"pre-trained base MLLM: held-out caption balanced accuracy {bacc:.3f}")
    return {"loss": history, "heldout_balanced_accuracy": float(bacc), "n_items": len(items)}
