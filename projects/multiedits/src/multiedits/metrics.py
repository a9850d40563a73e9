"""PIE-Bench metrics (PnPInversion ``evaluation/matrics_calculator.py``) and exact per-aspect accuracy.

* Unedited-region fidelity: PSNR (data range 1), MSE, SSIM (and LPIPS given a callable) between the edited and
  the source image, **both multiplied by (1 - mask)** as PnPInversion does: masked pixels become zeros and still
  count in the mean. A record whose mask covers the whole image has no unedited part (``None``).
* Structure distance: MSE between the cosine self-similarity matrices of the two images' features (DINO ViT-B/8
  key tokens of the last layer in the paper; any extractor (B, C, H, W) -> (B, C, h, w) or (B, N, C) here).
* CLIP similarity of the whole image and of the edited part (image × mask) to the target prompt, with any
  ``score(images, prompts) -> (B,)`` callable (:func:`load_clip_scorer` wraps a local transformers CLIP).
* Per-aspect accuracy on the shapes world: the attribute judge (``conddiff``'s classifier, 100% on renders)
  reads the edited image's shape / colour / size / position / background; an aspect is correct when its
  attribute reads as the target value; the attributes no aspect edits must keep the source's value.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from shared.metrics import mse, psnr, ssim


def to01(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1]."""
    return ((x.clamp(-1, 1) + 1) / 2).float()


def unedited_metrics(edited: torch.Tensor, source: torch.Tensor, mask: np.ndarray | torch.Tensor,
                     lpips_fn: Callable | None = None) -> dict[str, float | None]:
    """PIE-Bench background preservation of one image pair ((3, H, W) in [-1, 1]; mask (H, W), 1 = edited).

    Returns psnr, mse, ssim (and lpips with ``lpips_fn(a, b)`` on [-1, 1] inputs) on the (1 - mask)-multiplied
    images, or ``None`` for every metric when the mask leaves no unedited pixel.
    """
    keep = 1.0 - torch.as_tensor(np.asarray(mask), dtype=torch.float32)
    if keep.sum() == 0:
        return {"psnr": None, "mse": None, "ssim": None, **({"lpips": None} if lpips_fn else {})}
    a = (to01(edited.cpu()) * keep).permute(1, 2, 0).numpy()
    b = (to01(source.cpu()) * keep).permute(1, 2, 0).numpy()
    out = {"psnr": psnr(a, b, data_range=1.0), "mse": mse(a, b), "ssim": ssim(a, b, data_range=1.0)}
    if lpips_fn is not None:
        out["lpips"] = float(lpips_fn(torch.from_numpy(a).permute(2, 0, 1)[None] * 2 - 1,
                                      torch.from_numpy(b).permute(2, 0, 1)[None] * 2 - 1))
    return out


def self_similarity(features: torch.Tensor) -> torch.Tensor:
    """Cosine self-similarity (B, N, N) of features (B, C, h, w) or tokens (B, N, C)."""
    if features.ndim == 4:
        features = features.flatten(2).transpose(1, 2)
    f = F.normalize(features.float(), dim=-1)
    return f @ f.transpose(1, 2)


@torch.no_grad()
def structure_distance(a: torch.Tensor, b: torch.Tensor, extractor: Callable[[torch.Tensor], torch.Tensor]) -> float:
    """PIE-Bench structure distance: MSE between the self-similarity matrices of ``extractor``'s features of the
    two images (B, 3, H, W in [-1, 1]); the paper reports it × 10³ with DINO ViT-B/8 keys."""
    return float(F.mse_loss(self_similarity(extractor(a)), self_similarity(extractor(b))))


def judge_features(judge) -> Callable[[torch.Tensor], torch.Tensor]:
    """The judge CNN's last feature map as a small offline structure extractor (a proxy for DINO ViT-B/8)."""
    def extract(x: torch.Tensor) -> torch.Tensor:
        h = x.to(next(judge.parameters()).device)
        for block in judge.blocks:
            h = block(h)
        return h
    return extract


def load_clip_scorer(path: str | Path, device="cpu") -> Callable[[torch.Tensor, list[str]], torch.Tensor]:
    """CLIP score 100 · max(cos(image, text), 0) (torchmetrics' CLIPScore) with a local transformers CLIP
    (e.g. ``openai/clip-vit-large-patch14`` saved with ``save_pretrained``); nothing is downloaded."""
    from transformers import CLIPModel, CLIPProcessor

    try:
        model = CLIPModel.from_pretrained(str(path), local_files_only=True).to(device).eval()
        proc = CLIPProcessor.from_pretrained(str(path), local_files_only=True)
    except OSError as err:
        raise FileNotFoundError(f"no CLIP model at '{path}': save e.g. openai/clip-vit-large-patch14 there with "
                                "CLIPModel/CLIPProcessor.save_pretrained (nothing is downloaded)") from err

    @torch.no_grad()
    def score(images: torch.Tensor, prompts: list[str]) -> torch.Tensor:
        u8 = (to01(images) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()
        inputs = proc(text=prompts, images=list(u8), return_tensors="pt", padding=True).to(device)
        out = model(**inputs)
        img = F.normalize(out.image_embeds, dim=-1)
        txt = F.normalize(out.text_embeds, dim=-1)
        return 100 * (img * txt).sum(-1).clamp_min(0).cpu()

    return score


# --------------------------------------------------------------------------------- shapes-world judging
JUDGED = ("shape", "colour", "size", "position", "background")


@torch.no_grad()
def judge_attributes(judge, images: torch.Tensor) -> list[dict[str, str]]:
    """Attribute names the judge reads from each image (B, 3, H, W) in [-1, 1]."""
    from conddiff.classifier import ATTRIBUTES

    logits = judge(images.to(next(judge.parameters()).device).clamp(-1, 1))
    picks = {k: logits[k].argmax(1).tolist() for k in JUDGED}
    return [{k: ATTRIBUTES[k][picks[k][i]] for k in JUDGED} for i in range(images.shape[0])]


def scene_attributes(scene: dict) -> dict[str, str]:
    """Attribute names of a single-object scene dict (``Scene.to_dict``)."""
    o = scene["objects"][0]
    return {"shape": o["shape"], "colour": o["colour"], "size": o["size"], "position": o["position"],
            "background": scene["background"]}


def aspect_scores(read: dict[str, str], record: dict) -> dict[str, float]:
    """Per-aspect accuracy of one edited image: the fraction of aspects whose attribute reads as the target,
    whether all do, and the fraction of the attributes no aspect edits that kept the source's value."""
    target = scene_attributes(record["target_scene"])
    edited = {a["attribute"] for a in record["aspects"]}
    hits = [read[a] == target[a] for a in edited]
    kept = [read[a] == target[a] for a in JUDGED if a not in edited]
    return {"aspect_acc": float(np.mean(hits)), "all_aspects": float(all(hits)),
            "kept_acc": float(np.mean(kept)) if kept else 1.0,
            **{f"acc_{a}": float(read[a] == target[a]) for a in edited}}


def scene_aspect_scores(read: dict, record: dict) -> dict[str, float]:
    """Per-aspect accuracy of one edited multi-object image read by a scene judge (``conddiff.classifier.
    read_scenes``): a colour / size / shape aspect is right when the edited object's slot reads the target value,
    an addition when the slot holds an object of the target shape and colour, a deletion when the slot reads
    empty, a background edit when the background reads the target. "kept" is the fraction of the untouched
    facts (each untouched object's presence, shape, colour and size; every empty slot staying empty; the
    background unless edited) that still hold."""
    from conddiff.classifier import scene_of

    tgt = scene_of(record["target_scene"])
    tgt_objs = record["target_scene"]["objects"]
    src_objs = record["source_scene"]["objects"]
    hits, touched, per_type = [], set(), {}
    for a in record["aspects"]:
        t = a["type"]
        if t == "change_background":
            ok = read["background"] == a["target"]
            touched.add("background")
        elif t == "delete_object":
            pos = src_objs[a["source_object"]]["position"]
            ok = read["objects"][pos] is None
            touched.add(pos)
        else:
            o = tgt_objs[a["object"]]
            pos, got = o["position"], read["objects"][o["position"]]
            touched.add(pos)
            if t == "add_object":
                ok = got is not None and got["shape"] == o["shape"] and got["colour"] == o["colour"]
            else:
                ok = got is not None and got[a["attribute"]] == a["target"]
        hits.append(ok)
        per_type.setdefault(f"acc_{t}", []).append(ok)
    kept = []
    for pos, want in tgt["objects"].items():
        if pos in touched:
            continue
        got = read["objects"][pos]
        if want is None:
            kept.append(got is None)
        else:
            kept += [got is not None and got[f] == want[f] for f in ("shape", "colour", "size")]
    if "background" not in touched:
        kept.append(read["background"] == tgt["background"])
    return {"aspect_acc": float(np.mean(hits)), "all_aspects": float(all(hits)),
            "kept_acc": float(np.mean(kept)) if kept else 1.0,
            **{k: float(np.mean(v)) for k, v in per_type.items()}}
