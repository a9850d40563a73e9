"""Mechanism 3 -- noise blending (survey Sec. 4.3): combine several noise predictions into one ε̃.

* :func:`cfg_combine` / :class:`ClassifierFreeGuidance` -- ε̃ = ε(x_t, ∅) + s (ε(x_t, c) - ε(x_t, ∅)), i.e. the
  survey's ε̃ = (1 + w) ε(x_t, c) - w ε(x_t, ∅) with s = 1 + w (Ho & Salimans 2022);
* :func:`composable_combine` / :class:`ComposableDiffusion` -- ε̃ = ε(x_t, ∅) + Σ_i w_i (ε(x_t, c_i) - ε(x_t, ∅))
  (Liu et al. 2022, Eq. 10-12): conjunction (AND) with w_i > 0, negation (NOT) with w_i < 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def cfg_combine(eps_uncond: torch.Tensor, eps_cond: torch.Tensor, scale: float) -> torch.Tensor:
    """ε̃ = ε_∅ + s (ε_c - ε_∅); s = 1 gives the conditional ε, s = 0 the unconditional one."""
    return eps_uncond + scale * (eps_cond - eps_uncond)


def composable_combine(eps_uncond: torch.Tensor, eps_concepts: list[torch.Tensor],
                       weights: list[float]) -> torch.Tensor:
    """ε̃ = ε_∅ + Σ_i w_i (ε_{c_i} - ε_∅) (AND for w_i > 0, NOT for w_i < 0)."""
    out = eps_uncond.clone()
    for e, w in zip(eps_concepts, weights, strict=True):
        out = out + w * (e - eps_uncond)
    return out


@dataclass
class ClassifierFreeGuidance:
    """CFG with guidance scale s (one batched network call on [∅; c])."""

    scale: float = 3.0
    doubles_batch: bool = True  # the attention controller edits the conditional half only

    def predict_eps(self, ctx) -> torch.Tensor:
        x = ctx.x
        eps = ctx.pipe.eps(torch.cat([x, x]), ctx.t, torch.cat([ctx.uncond, ctx.cond]))
        eps_u, eps_c = eps.chunk(2)
        return cfg_combine(eps_u, eps_c, self.scale)


@dataclass
class ComposableDiffusion:
    """Composable diffusion over ``concepts``: each a prompt shared by the batch or a list of one prompt per sample."""

    concepts: list[str | list[str]]
    weights: list[float]

    def predict_eps(self, ctx) -> torch.Tensor:
        x, b = ctx.x, ctx.x.shape[0]
        if len(self.concepts) != len(self.weights):
            raise ValueError(f"{len(self.concepts)} concepts but {len(self.weights)} weights")
        embs = [ctx.pipe.encode_prompts([c] * b if isinstance(c, str) else list(c)) for c in self.concepts]
        n = len(embs) + 1
        eps = ctx.pipe.eps(torch.cat([x] * n), ctx.t, torch.cat([ctx.uncond, *embs])).chunk(n)
        return composable_combine(eps[0], list(eps[1:]), self.weights)
