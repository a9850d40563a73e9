"""The fidelity losses of the three tasks (Sec. III-D; official ``SO_Loss.py``)."""

from __future__ import annotations

import torch

from sjedd.labels import GLOBAL_NODES, LOCAL_NODES

EPS = 1e-8


def fidelity_loss(p: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Fidelity loss 1 - (sqrt(p g + eps) + sqrt((1 - p)(1 - g) + eps)), averaged over all entries.

    ``p`` are predicted probabilities and ``g`` binary (or soft) targets of the same shape; eps = 1e-8 keeps
    the square root differentiable at 0, as in the official code.
    """
    if p.shape != g.shape:
        raise ValueError(f"p and g must have the same shape, got {tuple(p.shape)} and {tuple(g.shape)}")
    g = g.to(p.dtype)
    return (1 - (torch.sqrt(p * g + EPS) + torch.sqrt((1 - p) * (1 - g) + EPS))).mean()


def task_losses(marg: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The three task losses [L1 binary, L2 global, L3 local] from (B, 10) marginals and (B, 10) labels.

    L1 is the fidelity loss of node 0; L2 the mean over the 3 global nodes; L3 the mean over the 6 local ones.
    """
    if marg.shape != labels.shape or marg.shape[-1] != 10:
        raise ValueError(f"marginals and labels must both be (batch, 10), got {tuple(marg.shape)}, "
                         f"{tuple(labels.shape)}")
    return torch.stack([
        fidelity_loss(marg[:, 0], labels[:, 0]),
        fidelity_loss(marg[:, list(GLOBAL_NODES)], labels[:, list(GLOBAL_NODES)]),
        fidelity_loss(marg[:, list(LOCAL_NODES)], labels[:, list(LOCAL_NODES)]),
    ])


def clip_contrastive_loss(image_features: torch.Tensor, text_features: torch.Tensor,
                          logit_scale: torch.Tensor) -> torch.Tensor:
    """CLIP's symmetric contrastive objective (Radford et al. 2021, Fig. 3), used by ``pretrain.py`` only.

    With L2-normalised features and s = exp(logit_scale) (clamped at 100, as CLIP does), the logits are
    s I T^T; the loss is the mean of the cross-entropies of each image over the texts and of each text over the
    images, the i-th pair being the positive.
    """
    if image_features.shape != text_features.shape:
        raise ValueError(f"image and text features must match, got {tuple(image_features.shape)} and "
                         f"{tuple(text_features.shape)}")
    image = torch.nn.functional.normalize(image_features, dim=-1)
    text = torch.nn.functional.normalize(text_features, dim=-1)
    logits = logit_scale.exp().clamp(max=100) * image @ text.T
    target = torch.arange(len(image), device=image.device)
    return (torch.nn.functional.cross_entropy(logits, target) + torch.nn.functional.cross_entropy(logits.T, target)) / 2
