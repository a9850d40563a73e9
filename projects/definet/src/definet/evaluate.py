"""Prediction and the official per-image evaluation protocol (``test.py``): the segmentation logits are
upsampled (bilinear) to the ground-truth size, passed through a sigmoid, min-max normalised per image, and
scored by pixel AUC, macro F1 (official), binary F1 and IoU at threshold 0.5, averaged over images
(:func:`shared.metrics.pixel_metrics`)."""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from definet.data import TEST_MEAN, TEST_STD, to_tensor
from shared.metrics import pixel_scores


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
    rows = [pixel_scores(p, m > 0.5) for p, m in zip(probs, masks)]
    out = {k: float(np.mean([r[k] for r in rows])) for k in ("f1_macro", "f1", "iou")}
    aucs = [r["auc"] for r in rows if not np.isnan(r["auc"])]
    out["auc"] = float(np.mean(aucs)) if aucs else float("nan")
    out["n_images"] = len(rows)
    return out


def evaluate(model: nn.Module, images, masks, size: int, device: torch.device) -> dict[str, float]:
    """:func:`predict` then :func:`score`."""
    probs, _ = predict(model, images, size, device)
    return score(probs, masks)
