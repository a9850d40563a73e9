"""Prediction and the official per-image evaluation protocol (``test.py``): the segmentation logits are
upsampled (bilinear) to the ground-truth size, passed through a sigmoid, min-max normalised per image, and
scored by pixel AUC, macro F1 (official), binary F1 and IoU at threshold 0.5, averaged over images
(:func:`shared.metrics.pixel_metrics`).

Edges are scored the same way against the official edge ground truth (mask minus its 5x5 erosion,
:func:`definet.losses.edge_targets`): the REAM edge head's map where the model has one (``edge_head_*``), and for
every model the edge of its predicted mask, the same recipe applied to the probability map, p - erode_5x5(p)
(``edge_mask_*``), so that models without an edge head are scored on boundaries too."""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from definet.data import TEST_MEAN, TEST_STD, to_tensor
from definet.losses import edge_targets


@torch.no_grad()
def predict(model: nn.Module, images: list[np.ndarray] | np.ndarray, size: int, device: torch.device,
            batch_size: int = 16) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
    """Probability maps (seg, edge) at each image's own size: the image is resized to ``size`` x ``size``, the
    logits are upsampled back to the image size (bilinear), then sigmoid. Edge maps are ``None`` for models
    without an edge output."""
    model.eval()
    segs, edges = [], []
    for start in range(0, len(images), batch_size):
        chunk = images[start:start + batch_size]
        x = torch.stack([to_tensor(cv2.resize(np.ascontiguousarray(im), (size, size), interpolation=cv2.INTER_LINEAR)
                                   if im.shape[:2] != (size, size) else im, TEST_MEAN, TEST_STD) for im in chunk])
        edge, seg = model(x.to(device))
        for i, im in enumerate(chunk):
            hw = im.shape[:2]
            segs.append(torch.sigmoid(F.interpolate(seg[i:i + 1], size=hw, mode="bilinear", align_corners=False))
                        [0, 0].cpu().numpy())
            edges.append(None if edge is None else torch.sigmoid(
                F.interpolate(edge[i:i + 1], size=hw, mode="bilinear", align_corners=False))[0, 0].cpu().numpy())
    return segs, edges


def score(probs: list[np.ndarray], masks: list[np.ndarray] | np.ndarray) -> dict[str, float]:
    """Official per-image scores averaged over images (AUC over images with both classes)."""
    from shared.metrics import pixel_scores  # scikit-learn: imported when scoring

    rows = [pixel_scores(p, m > 0.5) for p, m in zip(probs, masks)]
    out = {k: float(np.mean([r[k] for r in rows])) for k in ("f1_macro", "f1", "iou")}
    aucs = [r["auc"] for r in rows if not np.isnan(r["auc"])]
    out["auc"] = float(np.mean(aucs)) if aucs else float("nan")
    out["n_images"] = len(rows)
    return out


def mask_edge(prob: np.ndarray, kernel: int = 5) -> np.ndarray:
    """The edge of a (soft) mask by the ground-truth recipe: p - erode_kxk(p) (outside the image counts as
    foreground, as in :func:`definet.losses.edge_targets`, so the image border is no edge)."""
    prob = np.asarray(prob, np.float32)
    return prob - cv2.erode(prob, np.ones((kernel, kernel), np.uint8), borderType=cv2.BORDER_CONSTANT,
                            borderValue=float(prob.max()))


def score_edges(edge_probs: list[np.ndarray | None], seg_probs: list[np.ndarray], masks) -> dict[str, float]:
    """Edge scores (AUC, macro F1, IoU; per image, official protocol) against the ground-truth edge band:
    ``edge_head_*`` for the edge head's maps (absent when the model has none), ``edge_mask_*`` for the edge of the
    predicted mask (:func:`mask_edge`). Images whose ground truth has no edge are skipped."""
    gts = [edge_targets(torch.from_numpy(np.asarray(m, np.float32))).numpy() for m in masks]
    keep = [i for i, g in enumerate(gts) if g.any()]
    sources = {"edge_mask": [mask_edge(p) for p in seg_probs]}
    if edge_probs and edge_probs[0] is not None:
        sources["edge_head"] = edge_probs
    out = {}
    for name, maps in sources.items():
        scores = score([maps[i] for i in keep], [gts[i] for i in keep])
        out.update({f"{name}_{k}": scores[k] for k in ("auc", "f1_macro", "iou")})
    return out


def evaluate(model: nn.Module, images, masks, size: int, device: torch.device, *, edges: bool = False
             ) -> dict[str, float]:
    """:func:`predict` then :func:`score` (and :func:`score_edges` when ``edges``)."""
    probs, edge_probs = predict(model, images, size, device)
    out = score(probs, masks)
    if edges:
        out.update(score_edges(edge_probs, probs, masks))
    return out
