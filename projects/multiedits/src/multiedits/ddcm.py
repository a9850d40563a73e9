"""The inversion-free DDCM update (InfEdit, Xu et al. CVPR 2024) that ParallelEdits runs for every branch.

Notation of the official ``ddcm_sampler`` (ParallelEdits ``pipeline_pe.py``): z_0 is the clean source state, x_s a
state of the branch the edit is anchored to (the source branch, or another branch after the warm-up, see
:func:`anchors`), x_t the edited branch's state, ε_s / ε_t the two noise predictions and ᾱ the noise schedule.
With η the stochasticity (1 in the paper's demo):

* ε_c = (x_s - √ᾱ_t z_0) / √(1 - ᾱ_t)                        (the "consistent" noise implied by x_s)
* x̂_0^tgt = z_0 + ((x_t - x_s) - √(1 - ᾱ_t)(ε_t - ε_s)) / √ᾱ_t
* ε = (ε_t - ε_s) + ε_c,  σ² = η (1 - ᾱ_{t-1}),  n ~ N(0, I) shared by all branches
* x_{t-1}^tgt = √ᾱ_{t-1} x̂_0^tgt + √(1 - ᾱ_{t-1} - σ²) ε + σ n
* x_{t-1}^src = √ᾱ_{t-1} z_0      + √(1 - ᾱ_{t-1} - σ²) ε + σ n

With η = 1 the deterministic term vanishes: x_{t-1}^src = √ᾱ_{t-1} z_0 + √(1 - ᾱ_{t-1}) n is a fresh forward
sample of the source, so no inversion is needed ("inversion-free"). The update needs only ᾱ, so it runs on any
ε-prediction model (our DDIM-trained pixel model, or an LCM / Stable Diffusion UNet).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class DDCMStep:
    """Result of one DDCM update: the next source and target states and the target's x̂_0."""

    x_src_prev: torch.Tensor
    x_tgt_prev: torch.Tensor
    x0_tgt: torch.Tensor


def ddcm_step(x_s: torch.Tensor, x_t: torch.Tensor, eps_s: torch.Tensor, eps_t: torch.Tensor, z0: torch.Tensor,
              abar_t: float, abar_prev: float, noise: torch.Tensor, eta: float = 1.0,
              last: bool = False, clip_x0: bool = False) -> DDCMStep:
    """One DDCM update (the official ``ddcm_sampler``; equations in the module docstring).

    ``last`` is the single-step case of the official code (one timestep in the schedule): the states become x̂_0
    and z_0 with no noise. At the final step of a longer schedule ᾱ_{t-1} = 1 (the clean image), which gives the
    same result. ``clip_x0`` clips x̂_0^tgt to the data range [-1, 1] (pixel-space models, as diffusers'
    ``clip_sample``; not in the official latent-space code).
    """
    sigma2 = eta * (1.0 - abar_prev)
    eps_c = (x_s - abar_t**0.5 * z0) / (1.0 - abar_t) ** 0.5
    x0_tgt = z0 + ((x_t - x_s) - (1.0 - abar_t) ** 0.5 * (eps_t - eps_s)) / abar_t**0.5
    if clip_x0:
        x0_tgt = x0_tgt.clamp(-1.0, 1.0)
    if last:
        return DDCMStep(z0, x0_tgt, x0_tgt)
    eps = (eps_t - eps_s) + eps_c
    direction = max(1.0 - abar_prev - sigma2, 0.0) ** 0.5 * eps
    stochastic = sigma2**0.5 * noise
    return DDCMStep(abar_prev**0.5 * z0 + direction + stochastic, abar_prev**0.5 * x0_tgt + direction + stochastic,
                    x0_tgt)


def anchors(step: int, branch_states: torch.Tensor, branch_x0: torch.Tensor, source_state: torch.Tensor,
            clean: torch.Tensor, warmup_steps: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    """The (x_s, z_0) each branch's DDCM update is anchored to (official ``EditAllPipeline.__call__``).

    For steps ``step <= warmup_steps`` (official: ``i <= 6``) every branch is anchored to the source branch's
    state and the clean source. Afterwards the official code shifts the anchors by one branch:
    x_s = concat(branch_states[1:], source_state), z_0 = concat(branch_x0[1:], clean), i.e. branch j is anchored
    to branch j + 1's state and last x̂_0, and the last branch (the full target prompt) to the source. The paper
    does not explain this indexing; we implement it exactly. With one branch it is always the source (InfEdit).

    Args:
        branch_states, branch_x0: (N, C, H, W) the N branches' current states and last x̂_0.
        source_state, clean: (1, C, H, W) the source branch's state and the clean source z_0.
    """
    n = branch_states.shape[0]
    if step <= warmup_steps:
        return source_state.expand(n, *source_state.shape[1:]), clean.expand(n, *clean.shape[1:])
    return torch.cat([branch_states[1:], source_state]), torch.cat([branch_x0[1:], clean])
