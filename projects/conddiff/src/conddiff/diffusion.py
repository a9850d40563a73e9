"""The diffusion process itself: forward noising, the training loss, x̂_0, and the DDIM / DDPM reverse steps.

Notation as the survey (Sec. 2 and the Sec. 4 worked example): ᾱ_t = Π_{s<=t} α_s, α_t = 1 - β_t,
x_t = √ᾱ_t x_0 + √(1 - ᾱ_t) ε, x̂_0(x_t) = (x_t - √(1 - ᾱ_t) ε_θ) / √ᾱ_t. These small pure functions are the
"reverse step" slot of the sampler, which mechanism 4 ("revising the diffusion process") replaces.
"""

from __future__ import annotations

import torch


def _b(a: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor:
    """Broadcast a scalar or a per-sample vector over (B, C, H, W)."""
    a = torch.as_tensor(a, dtype=like.dtype, device=like.device)
    return a.reshape(-1, *([1] * (like.ndim - 1))) if a.ndim else a


def add_noise(x0: torch.Tensor, eps: torch.Tensor, abar: torch.Tensor | float) -> torch.Tensor:
    """q(x_t | x_0): x_t = √ᾱ_t x_0 + √(1 - ᾱ_t) ε (DDPM Eq. 4)."""
    return _b(abar, x0).sqrt() * x0 + (1 - _b(abar, x0)).sqrt() * eps


def predict_x0(x_t: torch.Tensor, eps: torch.Tensor, abar: torch.Tensor | float) -> torch.Tensor:
    """Tweedie / DDIM estimate x̂_0(x_t) = (x_t - √(1 - ᾱ_t) ε_θ) / √ᾱ_t (DDIM Eq. 9)."""
    return (x_t - (1 - _b(abar, x_t)).sqrt() * eps) / _b(abar, x_t).sqrt()


def eps_from_x0(x_t: torch.Tensor, x0: torch.Tensor, abar: torch.Tensor | float) -> torch.Tensor:
    """The ε consistent with a (possibly corrected) x̂_0: ε = (x_t - √ᾱ_t x̂_0) / √(1 - ᾱ_t)."""
    return (x_t - _b(abar, x_t).sqrt() * x0) / (1 - _b(abar, x_t)).sqrt()


def ddim_sigma(abar_t: float, abar_prev: float, eta: float) -> float:
    """σ_t(η) = η √((1 - ᾱ_{t-1}) / (1 - ᾱ_t)) √(1 - ᾱ_t / ᾱ_{t-1}) (DDIM Eq. 16); η = 1 is DDPM's σ_t."""
    return eta * ((1 - abar_prev) / (1 - abar_t) * (1 - abar_t / abar_prev)) ** 0.5


def ddim_step(x0: torch.Tensor, eps: torch.Tensor, abar_prev: float, sigma: float = 0.0,
              noise: torch.Tensor | None = None) -> torch.Tensor:
    """DDIM update (Eq. 12): x_{t-1} = √ᾱ_{t-1} x̂_0 + √(1 - ᾱ_{t-1} - σ_t²) ε_θ + σ_t z.

    With σ_t from :func:`ddim_sigma` at η = 1 and consecutive timesteps this is the DDPM ancestral step of the
    survey's Sec. 4.4 equation, x_{t-1} = (x_t - (1 - α_t)/√(1 - ᾱ_t) ε̃)/√α_t + σ_t z.
    """
    out = abar_prev**0.5 * x0 + max(1 - abar_prev - sigma**2, 0.0) ** 0.5 * eps
    if sigma > 0:
        out = out + sigma * (noise if noise is not None else torch.randn_like(x0))
    return out


def ddim_inversion_step(x_t: torch.Tensor, eps: torch.Tensor, abar_t: float, abar_next: float) -> torch.Tensor:
    """DDIM inversion (survey Sec. 4.1): x_{t+1} = √ᾱ_{t+1} x̂_0(x_t) + √(1 - ᾱ_{t+1}) ε_θ(x_t, t, c).

    The deterministic DDIM step run backwards, with ε_θ evaluated at the current state (the usual
    approximation ε_θ(x_{t+1}) ≈ ε_θ(x_t)); it is the exact inverse of :func:`ddim_step` (σ = 0) when ε does
    not depend on x.
    """
    return abar_next**0.5 * predict_x0(x_t, eps, abar_t) + (1 - abar_next) ** 0.5 * eps


def ddpm_loss(eps_pred: torch.Tensor, eps: torch.Tensor, abar: torch.Tensor,
              min_snr_gamma: float | None) -> torch.Tensor:
    """The simple DDPM objective E‖ε - ε_θ(x_t, t, c)‖² (Ho et al. Eq. 14), optionally Min-SNR-γ weighted.

    Min-SNR-γ (Hang et al. 2023) weights each sample by min(SNR_t, γ) / SNR_t for ε-prediction, with
    SNR_t = ᾱ_t / (1 - ᾱ_t); it speeds up convergence. ``None`` gives the plain unweighted loss.
    """
    per_sample = (eps_pred - eps).pow(2).flatten(1).mean(1)
    if min_snr_gamma is None:
        return per_sample.mean()
    snr = abar / (1 - abar)
    return (per_sample * (snr.clamp(max=min_snr_gamma) / snr).to(per_sample.dtype)).mean()


def timestep_sequence(num_train_timesteps: int, steps: int) -> list[int]:
    """DDIM's evenly spaced sub-sequence τ ('leading' spacing, as diffusers): descending, e.g. 980, ..., 20, 0."""
    stride = num_train_timesteps // steps
    return list(range(0, stride * steps, stride))[::-1]
