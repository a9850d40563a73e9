"""The X²-DFD stages as functions: build the MLLM, MFA ranking, SFS explanations, scoring and evaluation."""

from __future__ import annotations

import numpy as np

from shared.metrics import roc_auc
from x2dfd import mfa, prompts, sfs, wfs
from x2dfd.data import FaceSet
from x2dfd.mllm import MLLM


def corpus(bank: list[dict]) -> list[str]:
    """Every text the pipeline can emit or read (the tiny tokenizer's vocabulary is built from it)."""
    texts = [prompts.LLAVA_V1_SYSTEM, prompts.explanation_prompt("real"), prompts.explanation_prompt("fake"),
             prompts.BINARY_QUESTION, "ASSISTANT: USER: This image is real. This image is fake. Yes No N/A",
             wfs.expert_question({"Blending": 0.5, "Diffusion": None}),
             wfs.answer_supplement("fake", {"Blending": 0.9, "Diffusion": 0.9}),
             wfs.answer_supplement("real", {"Blending": 0.1})]
    return texts + [q[k] for q in bank for k in ("question", "yes", "no")]


def build_mllm(cfg, bank: list[dict]) -> MLLM:
    """``cfg.mllm == "tiny"``: the offline small LLaVA; otherwise a real llava-hf checkpoint in ``cfg.dtype``."""
    from x2dfd.mllm import torch_dtype

    if cfg.mllm == "tiny":
        mllm = MLLM.tiny(corpus(bank), cfg.tiny, seed=cfg.seed)
        return mllm if cfg.dtype == "float32" else _cast(mllm, torch_dtype(cfg.dtype))
    return MLLM.from_pretrained(cfg.mllm, dtype=torch_dtype(cfg.dtype))


def _cast(mllm: MLLM, dtype) -> MLLM:
    mllm.model.to(dtype)
    return mllm


def mfa_subset(data: FaceSet, n_images: int, rng: np.random.Generator) -> np.ndarray:
    """A balanced labelled subset (half real, half fake) of ``data`` for MFA."""
    fake, real = np.flatnonzero(data.labels == 1), np.flatnonzero(data.labels == 0)
    k = min(n_images // 2, len(fake), len(real))
    return np.concatenate([rng.choice(real, k, replace=False), rng.choice(fake, k, replace=False)])


def run_mfa(mllm: MLLM, data: FaceSet, bank: list[dict], cfg, rng: np.random.Generator,
            heldout: FaceSet | None = None) -> dict:
    """MFA (Sec. 3.1) on a balanced labelled subset of the training set: P(yes) per question, ranked by balanced
    accuracy. With ``heldout``, the same questions are also scored on those images (a check of the ranking only:
    nothing is chosen with it)."""
    pick = mfa_subset(data, cfg.n_images, rng)
    p_yes = mfa.assess(mllm, mllm.pixel_values(data.images[pick]), data.labels[pick] == 1, bank)
    order, acc = mfa.rank_features(p_yes, data.labels[pick] == 1, cfg.threshold)
    out = {"order": order.tolist(), "balanced_accuracy": acc.tolist(), "n_images": len(pick),
           "mean_p_yes": p_yes.mean(1)[order].tolist(),
           "questions": [bank[i]["feature"] for i in order], "top_k": [int(i) for i in order[: cfg.top_k]]}
    # threshold-free diagnostic (not used to rank): ROC-AUC of P(yes) for fake vs real, per question
    out["auc_p_yes"] = [roc_auc(data.labels[pick], p_yes[q]) for q in order]
    if heldout is not None:
        p_held = mfa.assess(mllm, mllm.pixel_values(heldout.images), heldout.labels == 1, bank)
        held = mfa.balanced_accuracy(p_held >= cfg.threshold, heldout.labels == 1)
        out["heldout_balanced_accuracy"] = held[order].tolist()
        out["heldout_auc_p_yes"] = [roc_auc(heldout.labels, p_held[q]) for q in order]
        out["heldout_n_images"] = len(heldout)
    return out


def explanations(mllm: MLLM, data: FaceSet, top: list[dict], cfg) -> tuple[list[str], dict]:
    """SFS explanations (Sec. 3.2) and a summary of how they were made.

    ``cfg.sfs.explanation``: ``"mllm"`` -- the base MLLM writes them from the label-conditioned prompt
    (official); ``"assessed"`` -- the top-k MFA features, said the way the base MLLM itself answers them for each
    image (:func:`x2dfd.sfs.assessed_explanation`); ``"template"`` -- the top-k features chosen by the
    ground-truth manipulated regions (no model assessment)."""
    labels = ["fake" if y else "real" for y in data.labels]
    mode = cfg.sfs.explanation
    if mode == "mllm":
        asks = [prompts.human_turn(prompts.explanation_prompt(lbl)) for lbl in labels]
        return mllm.generate(data.images, asks, max_new_tokens=cfg.sfs.max_new_tokens), {"mode": mode}
    if mode == "assessed":
        px = mllm.pixel_values(data.images)
        p_yes = np.stack([mllm.p_yes(px, q["question"]) for q in top], 1)  # (N, k)
        made = [sfs.assessed_explanation(lbl, top, row) for lbl, row in zip(labels, p_yes)]
        forced = np.array([f for _, f in made])
        return [t for t, _ in made], {"mode": mode, "forced_fraction": float(forced.mean()),
                                      "model_agrees_fraction": float(1 - forced.mean())}
    if mode != "template":
        raise ValueError(f"sfs.explanation must be 'mllm', 'assessed' or 'template', got {mode!r}")
    return [sfs.templated_explanation(lbl, top, regs) for lbl, regs in zip(labels, data.regions)], {"mode": mode}


def human_turns(scores: np.ndarray | None, alias: str, n: int) -> list[str]:
    """The question per image: plain, or with the expert's score (WFS)."""
    if scores is None:
        return [prompts.human_turn()] * n
    return [wfs.expert_question({alias: float(s)}) for s in scores]


def answers(data: FaceSet, expl: list[str] | None, scores: np.ndarray | None, expert_cfg) -> list[str]:
    """The gpt turn per image: "This image is {label}." (+ SFS explanation) (+ WFS supplement)."""
    out = []
    for i, y in enumerate(data.labels):
        label = "fake" if y else "real"
        text = prompts.compose_labeled_response(label, expl[i] if expl is not None else "")
        if scores is not None:
            text += wfs.answer_supplement(label, {expert_cfg.alias: float(scores[i])}, expert_cfg.lo, expert_cfg.hi)
        out.append(text)
    return out


def video_scores(scores: np.ndarray, labels: np.ndarray, videos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Video-level score = mean of its frame scores; the label of a video is that of its frames."""
    ids, inverse = np.unique(videos, return_inverse=True)
    v_score = np.bincount(inverse, weights=scores) / np.bincount(inverse)
    v_label = np.zeros(len(ids), np.int64)
    v_label[inverse] = labels
    return v_score, v_label


def detection_metrics(scores: np.ndarray, data: FaceSet) -> dict:
    """Frame-level and video-level ROC-AUC of P(fake), plus per-manipulation frame AUC (vs the split's reals)."""
    v_score, v_label = video_scores(scores, data.labels, data.videos)
    out = {"frame_auc": roc_auc(data.labels, scores), "video_auc": roc_auc(v_label, v_score),
           "n_frames": int(len(scores)), "n_videos": int(len(v_score))}
    mans = np.array(data.manipulations)
    for m in sorted(set(mans) - {"real"}):
        sel = (mans == m) | (data.labels == 0)
        out[f"frame_auc_{m}"] = roc_auc(data.labels[sel], scores[sel])
    return out


def evaluate(mllm: MLLM, expert, splits: dict[str, FaceSet], cfg, device, n_explanations: int = 0,
             quiet: bool = True) -> dict:
    """P(fake) of every test frame (with the expert's score in the question when WFS is on), frame/video AUC per
    split, the expert's own AUC, and a few generated explanations per split."""
    from shared.runs import progress
    from x2dfd.wfs import expert_scores

    results = {}
    tests = [k for k in splits if k != "train"]
    for name in progress(tests, desc="evaluate", quiet=quiet):
        data = splits[name]
        scores = expert_scores(expert, data.images, device, size=cfg.expert.image_size) if expert is not None else None
        asks = human_turns(scores, cfg.expert.alias, len(data))
        px = mllm.pixel_values(data.images) if mllm.vision == "lite0" else data.images
        p_fake = mllm.p_fake(px, asks, batch_size=cfg.eval_batch_size)
        res = detection_metrics(p_fake, data)
        if scores is not None:
            res["expert_frame_auc"] = roc_auc(data.labels, scores)
        examples = []
        if n_explanations:
            pick = np.linspace(0, len(data) - 1, n_explanations).round().astype(int)
            texts = mllm.generate(px[pick], [asks[i] for i in pick], max_new_tokens=cfg.explanation_tokens)
            examples = [{"index": int(i), "manipulation": data.manipulations[i], "label": int(data.labels[i]),
                         "question": asks[i], "p_fake": round(float(p_fake[i]), 4), "answer": t}
                        for i, t in zip(pick, texts)]
        results[name] = {"metrics": res, "examples": examples, "p_fake": p_fake.round(5).tolist()}
    return results
