"""Mechanism 5 -- guidance (survey Sec. 4.5): gradient terms that steer each reverse step.

* :class:`ClassifierGuidance` (Dhariwal & Nichol 2021, Alg. 2, the DDIM form): with a classifier p_φ(y | x_t, t)
  trained on noisy images, ε̂ = ε̃ - s √(1 - ᾱ_t) ∇_{x_t} log p_φ(y | x_t, t). Its contribution to the step is the
  difference it makes to the reverse step, Δ = step(ε̂) - step(ε̃) (same x_t, same noise), added to the running
  x_{t-1}; for the DDIM step without clipping Δ = (√(1 - ᾱ_{t-1} - σ²) - √ᾱ_{t-1} √(1 - ᾱ_t) / √ᾱ_t) (ε̂ - ε̃).
  No gradient flows through the denoiser.

Composition rule (every slot of :mod:`conddiff.sampler`): ``guide(ctx, x_prev)`` receives the running x_{t-1}
(after the reverse step, the attention slot's local blend and earlier guidance terms) and returns it with its own
term added; it never recomputes the step from scratch, so what earlier slots did survives.
* :class:`LossGuidance` (DPS, Chung et al. 2023, Alg. 1; the forward guidance of Universal Guidance / FreeDoM):
  x_{t-1} ← x_{t-1} - ζ_t ∇_{x_t} ℓ(x̂_0(x_t)), the gradient flowing through ε_θ. For a measurement y = A(x),
  :func:`measurement_norm` gives DPS's ℓ = ‖y - A(x̂_0)‖ (its gradient equals ζ/‖y - A(x̂_0)‖ · ½∇‖·‖², the
  step-size rule ζ_t = ζ / ‖y - A(x̂_0)‖ of the paper); :func:`attribute_loss` a universal-guidance loss
  -log p(y | x̂_0) of a classifier of clean images.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F


def classifier_guided_eps(eps: torch.Tensor, grad_log_p: torch.Tensor, abar_t: float, scale: float) -> torch.Tensor:
    """ε̂ = ε - s √(1 - ᾱ_t) ∇_{x_t} log p_φ(y | x_t)."""
    return eps - scale * (1 - abar_t) ** 0.5 * grad_log_p


def log_prob_of(logits: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]) -> torch.Tensor:
    """Σ over the targeted attributes of log p(y_attr | x), per sample (B,)."""
    return sum(F.log_softmax(logits[k], -1).gather(1, v.view(-1, 1).to(logits[k].device)).squeeze(1)
               for k, v in targets.items())


@dataclass
class ClassifierGuidance:
    """Guide towards attribute labels ``targets`` {attribute: (B,) int tensor} with a noise-aware classifier."""

    classifier: torch.nn.Module
    targets: dict[str, torch.Tensor]
    scale: float = 1.0

    def gradient(self, x_t: torch.Tensor, t: int) -> torch.Tensor:
        with torch.enable_grad():
            x = x_t.detach().requires_grad_(True)
            tt = torch.full((x.shape[0],), t, device=x.device)
            logp = log_prob_of(self.classifier(x, tt), self.targets).sum()
            return torch.autograd.grad(logp, x)[0]

    def guide(self, ctx, x_prev: torch.Tensor) -> torch.Tensor:
        """x_{t-1} + Δ with Δ = step(ε̂) - step(ε̃): the guidance term alone, added to the running x_{t-1}."""
        if self.scale == 0:
            return x_prev
        eps = ctx.eps.detach()
        eps_hat = classifier_guided_eps(eps, self.gradient(ctx.x, ctx.t), ctx.abar_t, self.scale)
        saved_x, ctx.x = ctx.x, ctx.x.detach()
        try:
            delta = ctx.reverse_step(eps_hat) - ctx.reverse_step(eps)
        finally:
            ctx.x = saved_x
        return x_prev + delta


@dataclass
class LossGuidance:
    """x_{t-1} ← x_{t-1} - ζ ∇_{x_t} ℓ(x̂_0(x_t)) with ℓ: (B, C, H, W) -> (B,) (differentiable)."""

    loss: Callable[[torch.Tensor], torch.Tensor]
    zeta: float = 1.0
    needs_grad: bool = True

    def guide(self, ctx, x_prev: torch.Tensor) -> torch.Tensor:
        if not ctx.x.requires_grad:
            raise RuntimeError("LossGuidance needs the sampler to track gradients through ε_θ (needs_grad)")
        loss = self.loss(ctx.pipe.decode(ctx.x0) if ctx.pipe.vae is not None else ctx.x0).sum()
        grad = torch.autograd.grad(loss, ctx.x)[0]
        return x_prev.detach() - self.zeta * grad


def measurement_norm(op, y: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """DPS's ℓ(x̂_0) = ‖y - A(x̂_0)‖ per sample."""
    return lambda x0: (y.to(x0) - op.A(x0)).flatten(1).norm(dim=1)


def attribute_loss(classifier: torch.nn.Module, targets: dict[str, torch.Tensor]) -> Callable:
    """Universal-guidance forward loss ℓ(x̂_0) = -log p(y | x̂_0) of a classifier of clean images."""
    return lambda x0: -log_prob_of(classifier(x0.clamp(-1, 1)), targets)
