"""Mechanism 1 -- inversion (survey Sec. 4.1): where the reverse trajectory starts.

* :class:`DDIMInversion` -- deterministic DDIM inversion of a source image under a source prompt (as in
  Null-text inversion's official ``next_step``): for each grid time t (ascending),
  x_t = √ᾱ_t x̂_0(x_{t-s}) + √(1 - ᾱ_t) ε_θ(x_{t-s}, t, c), then sampling starts from x_T. The stored
  trajectory {x_t} serves Direct-Inversion-style editors.
* :class:`SDEdit` -- stochastic: x_{t0} = √ᾱ_{t0} x_guide + √(1 - ᾱ_{t0}) ε with t0 = strength · T, then ordinary
  reverse sampling from t0 (Meng et al. 2022).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from conddiff.diffusion import add_noise, ddim_inversion_step


@dataclass
class DDIMInversion:
    """DDIM-invert ``images`` (B, 3, H, W) in [-1, 1] under ``prompts`` (the source prompt of each sample).

    ``guidance_scale`` 1 inverts with the conditional ε (the usual choice); > 1 uses CFG during inversion.
    For P2P editing pass each source image twice ([source, target] pairs share the inverted x_T).
    ``exact_inverse``: the sampler then defaults to no x̂_0 clipping (clipping breaks the round trip).
    """

    exact_inverse = True  # class attribute, read by conddiff.sampler.sample for its clip_x0 default

    images: torch.Tensor
    prompts: list[str]
    guidance_scale: float = 1.0
    trajectory: list[torch.Tensor] = field(default_factory=list)

    @torch.no_grad()
    def start(self, ctx) -> tuple[torch.Tensor, int]:
        pipe = ctx.pipe
        x = pipe.encode(self.images.to(pipe.device))
        cond = pipe.encode_prompts(list(self.prompts))
        uncond = pipe.encode_prompts([""] * len(self.prompts)) if self.guidance_scale != 1 else None
        self.trajectory = [x]
        for i in range(len(ctx.grid)):  # from ᾱ at grid index i - 1 (1 for the clean image) to ᾱ at index i
            t = ctx.grid[i]
            eps = pipe.eps(x, t, cond)
            if uncond is not None:
                eps_u = pipe.eps(x, t, uncond)
                eps = eps_u + self.guidance_scale * (eps - eps_u)
            x = ddim_inversion_step(x, eps, ctx.abar(i - 1), ctx.abar(i))
            self.trajectory.append(x)
        return x, len(ctx.grid) - 1


@dataclass
class SDEdit:
    """Start from the guide image noised to t0 = strength · T (strength in (0, 1])."""

    images: torch.Tensor
    strength: float = 0.5

    def start(self, ctx) -> tuple[torch.Tensor, int]:
        if not 0 < self.strength <= 1:
            raise ValueError(f"SDEdit strength must be in (0, 1], got {self.strength}")
        x0 = ctx.pipe.encode(self.images.to(ctx.pipe.device))
        t0 = self.strength * ctx.pipe.scheduler.config.num_train_timesteps
        index = max(i for i, t in enumerate(ctx.grid) if t <= max(t0 - 1, 0))
        return add_noise(x0, ctx.randn(x0), ctx.abar(index)), index
