"""Losses: EDM denoising score matching (to train the offline teachers) and the SFD trajectory loss.

The SFD per-step loss lives beside its update rule in :mod:`sfd.distill` (:func:`sfd.distill.trajectory_loss`);
it is re-exported here so that every loss of the project can be found in one module.
"""

from __future__ import annotations

import torch

from sfd.distill import trajectory_loss

__all__ = ["edm_loss", "trajectory_loss"]


def edm_loss(net: torch.nn.Module, x0: torch.Tensor, p_mean: float = -1.2, p_std: float = 1.2) -> torch.Tensor:
    """EDM training loss (Karras et al. 2022, Eq. 2 and Table 1), averaged over the batch.

    ln σ ~ N(P_mean, P_std²), n ~ N(0, σ² I), λ(σ) = (σ² + σ_d²)/(σ·σ_d)², L = E[λ(σ)·‖D(x0 + n, σ) − x0‖²]
    (the squared norm summed over the data dimensions, as in the official ``EDMLoss``).
    """
    shape = (x0.shape[0],) + (1,) * (x0.ndim - 1)
    sigma = (torch.randn(shape, device=x0.device) * p_std + p_mean).exp()
    sd = net.sigma_data
    weight = (sigma**2 + sd**2) / (sigma * sd) ** 2
    denoised = net(x0 + torch.randn_like(x0) * sigma, sigma.reshape(-1))
    return (weight * (denoised - x0) ** 2).flatten(1).sum(1).mean()
