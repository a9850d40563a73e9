"""DeFI-Net losses (paper Sec. III-E; official ``utils/loss.py`` and ``utils/edge_extract.py``).

    L = segWeight * L_structure(seg, mask) + edgeWeight * L_boundary(edge, edge_gt),   segWeight = 5, edgeWeight = 1

* L_structure (F3Net, Wei et al. AAAI 2020) = weighted BCE + weighted IoU with the boundary-emphasising weight
  map w = 1 + 5 |avgpool_31(m) - m| (31x31 average pool, stride 1, zero padding 15, padding counted);
* L_boundary = the same weighted BCE on the edge map;
* the edge ground truth is the mask minus its 5x5 erosion: a 2-pixel band just inside the region boundary.

``official_bce=True`` reproduces what the official code actually computes: it calls
``binary_cross_entropy_with_logits(..., reduce='none')``; ``reduce`` is a legacy boolean and the string is
truthy, so the call returns the *mean* BCE and the following weighting returns that scalar unchanged: the
official "weighted BCE" is plain mean BCE (only the IoU term is weighted).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class LossConfig:
    seg_weight: float = 5.0  # official --segWeight
    edge_weight: float = 1.0  # official --edgeWeight
    official_bce: bool = False  # True: the official code's (unweighted) mean BCE, see the module docstring


def _as_nchw(t: torch.Tensor, name: str) -> torch.Tensor:
    if t.ndim == 2:
        t = t[None, None]
    elif t.ndim == 3:
        t = t[:, None]
    if t.ndim != 4 or t.shape[1] != 1:
        raise ValueError(f"{name} must be (H, W), (N, H, W) or (N, 1, H, W), got {tuple(t.shape)}")
    return t.float()


def weight_map(mask: torch.Tensor, kernel: int = 31, alpha: float = 5.0) -> torch.Tensor:
    """w = 1 + alpha |avgpool_k(m) - m| (stride 1, zero padding k // 2, padded zeros counted): 1 far from
    region boundaries, up to 1 + alpha next to them. ``mask`` is (N, 1, H, W)."""
    pooled = F.avg_pool2d(mask, kernel_size=kernel, stride=1, padding=kernel // 2)
    return 1 + alpha * (pooled - mask).abs()


def weighted_bce(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, *,
                 official_bce: bool = False) -> torch.Tensor:
    """Per-image weighted BCE  sum(w * bce) / sum(w)  (shape (N, 1)); ``official_bce``: the batch-mean BCE
    (a scalar), as the official code computes it."""
    if official_bce:
        return F.binary_cross_entropy_with_logits(logits, target)
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    return (weight * bce).sum(dim=(2, 3)) / weight.sum(dim=(2, 3))


def weighted_iou(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Per-image weighted IoU loss  1 - (sum(p m w) + 1) / (sum((p + m) w) - sum(p m w) + 1),  p = sigmoid."""
    p = torch.sigmoid(logits)
    inter = (p * target * weight).sum(dim=(2, 3))
    union = ((p + target) * weight).sum(dim=(2, 3))
    return 1 - (inter + 1) / (union - inter + 1)


def structure_loss(logits: torch.Tensor, mask: torch.Tensor, *, official_bce: bool = False) -> torch.Tensor:
    """Structure loss of the segmentation output: mean over the batch of weighted BCE + weighted IoU
    (F3Net; DeFI-Net Sec. III-E). ``logits`` and ``mask`` are (N, 1, H, W); the mask may be soft in [0, 1]."""
    logits, mask = _as_nchw(logits, "logits"), _as_nchw(mask, "mask")
    if logits.shape != mask.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and mask {tuple(mask.shape)} must have the same shape")
    w = weight_map(mask)
    return (weighted_bce(logits, mask, w, official_bce=official_bce) + weighted_iou(logits, mask, w)).mean()


def boundary_loss(logits: torch.Tensor, edge: torch.Tensor, *, official_bce: bool = False) -> torch.Tensor:
    """Edge (boundary) loss: the weighted BCE of the edge logits against the edge ground truth (official
    ``bondary_loss``), averaged over the batch."""
    logits, edge = _as_nchw(logits, "edge logits"), _as_nchw(edge, "edge")
    return weighted_bce(logits, edge, weight_map(edge), official_bce=official_bce).mean()


def edge_targets(mask: torch.Tensor, kernel: int = 5) -> torch.Tensor:
    """Edge ground truth of the official ``edge_extract.py``: binarise the mask at 0.5 (127.5 of 255), then
    edge = mask - erode(mask, 5x5), i.e. a 2-pixel band just inside the region boundary, values 0/1.

    The erosion treats pixels outside the image as foreground (OpenCV's default border for ``erode``), so a
    region touching the image border has no edge along it; an empty or full mask has no edge. (The official
    recipe subtracts a 3x3-sharpened mask, which saturates back to the mask itself for a 0/255 image.)
    Accepts (H, W), (N, H, W) or (N, 1, H, W); returns the same shape, float.
    """
    shape = mask.shape
    m = (_as_nchw(mask, "mask") > 0.5).float()
    r = kernel // 2
    eroded = -F.max_pool2d(-F.pad(m, (r, r, r, r), value=1.0), kernel_size=kernel, stride=1)
    return (m - eroded).reshape(shape)


def definet_loss(edge_logits: torch.Tensor | None, seg_logits: torch.Tensor, mask: torch.Tensor,
                 cfg: LossConfig = LossConfig()) -> dict[str, torch.Tensor]:
    """Total loss = seg_weight * structure + edge_weight * boundary (the boundary term only when the model
    has an edge output). Returns ``{"loss", "seg", "edge"}`` (the weighted terms)."""
    seg = cfg.seg_weight * structure_loss(seg_logits, mask, official_bce=cfg.official_bce)
    if edge_logits is None:
        edge = seg.new_zeros(())
    else:
        edge = cfg.edge_weight * boundary_loss(edge_logits, edge_targets(mask), official_bce=cfg.official_bce)
    return {"loss": seg + edge, "seg": seg, "edge": edge}
