"""The composable sampler: one reverse-diffusion loop with a slot per sampling mechanism of the survey (Sec. 4).

At each step the slots run in the survey's order (its Sec. 4 worked example, horse -> zebra):

1. **inversion** (Sec. 4.1) -- before the loop: where the trajectory starts (DDIM inversion, SDEdit);
2. **attention** (Sec. 4.2) -- around the network call: attention processors edit the maps (Prompt-to-Prompt);
3. **blending** (Sec. 4.3) -- which conditional predictions are made and how they combine into ε̃ (CFG,
   composable diffusion);
4. **process** (Sec. 4.4) -- the reverse step x_t -> x_{t-1} (DDIM by default; DDNM revises it);
5. **guidance** (Sec. 4.5) -- gradient terms added to the step (classifier guidance, DPS / universal guidance);
6. **correction** (Sec. 4.6) -- conditional correction of x_{t-1} (RePaint with resampling, ILVR).

Every slot is optional and any subset combines: each slot after the reverse step receives the running x_{t-1}
and returns it with its own contribution (P2P's local blend, a guidance term, a correction), never a step
recomputed from scratch (``tests/test_conddiff_composition.py`` composes inversion, P2P local blend and
classifier guidance and checks each contribution).

x̂_0 clipping (``clip_x0``): clipping x̂_0 to [-1, 1] keeps pixel samples in range but breaks the exact inverse of
DDIM inversion (29 dB -> 16 dB round trip on the committed model). Default per mechanism: on for pixel models,
**off whenever an inversion component asks for exactness** (``DDIMInversion.exact_inverse = True``; SDEdit
is stochastic and keeps it on) and off for latent models; an explicit ``clip_x0`` wins.

A component is any object with the slot's method:
``inversion.start(ctx) -> (x, first_index)``, ``attention.begin_step(ctx)`` / ``attention.after_step(ctx, x)``
(+ ``attention.controller``), ``blending.predict_eps(ctx) -> ε̃``, ``process.reverse_step(ctx, eps) -> x_{t-1}``,
``guidance.guide(ctx, x_prev) -> x_prev``, ``correction.correct(ctx, x_prev) -> x_prev`` and optionally
``correction.time_path(num_steps)`` (RePaint's resampling jumps).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from conddiff import attention as attn_lib
from conddiff.diffusion import ddim_sigma, ddim_step, predict_x0
from conddiff.pipeline import Pipeline


@dataclass
class StepContext:
    """What the components see. Time index i runs over the DDIM grid (i = -1 is the clean image)."""

    pipe: Pipeline
    cond: torch.Tensor  # prompt embeddings (B, L, D)
    uncond: torch.Tensor  # null-prompt embeddings (B, L, D)
    grid: list[int]  # ascending DDIM timesteps, e.g. [0, 40, ..., 960]
    eta: float
    generator: torch.Generator | None
    x: torch.Tensor | None = None  # x_t
    index: int = 0  # i: x is x_{grid[i]}
    step: int = 0  # number of reverse steps done so far
    num_steps: int = 0
    eps: torch.Tensor | None = None  # the blended ε̃ of this step
    x0: torch.Tensor | None = None  # x̂_0(x_t, ε̃)
    noise: torch.Tensor | None = None  # the z of this step's stochastic term
    process: object = None
    clip_x0: bool = True  # clip x̂_0 to [-1, 1] in the reverse step (pixel-space DDPM / DDIM practice)
    extras: dict = field(default_factory=dict)

    @property
    def t(self) -> int:
        return self.grid[self.index]

    def abar(self, index: int) -> float:
        """ᾱ at grid index (1 for the clean image, index -1)."""
        return 1.0 if index < 0 else float(self.pipe.alphas_cumprod[self.grid[index]])

    @property
    def abar_t(self) -> float:
        return self.abar(self.index)

    @property
    def abar_prev(self) -> float:
        return self.abar(self.index - 1)

    @property
    def sigma(self) -> float:
        return ddim_sigma(self.abar_t, self.abar_prev, self.eta) if self.index > 0 else 0.0

    def randn(self, like: torch.Tensor) -> torch.Tensor:
        return torch.randn(like.shape, generator=self.generator, device="cpu").to(like)

    def predict_x0(self, eps: torch.Tensor) -> torch.Tensor:
        """x̂_0(x_t, ε), clipped to the data range [-1, 1] when ``clip_x0`` (diffusers' ``clip_sample``)."""
        x0 = predict_x0(self.x, eps, self.abar_t)
        return x0.clamp(-1, 1) if self.clip_x0 else x0

    def reverse_step(self, eps: torch.Tensor) -> torch.Tensor:
        """The (possibly revised) reverse step with a given ε (guidance re-runs it with a corrected ε)."""
        if self.process is not None:
            return self.process.reverse_step(self, eps)
        return ddim_step(self.predict_x0(eps), eps, self.abar_prev, self.sigma, self.noise)


def ddim_grid(num_train_timesteps: int, steps: int) -> list[int]:
    """Ascending DDIM timesteps (leading spacing): [0, s, 2s, ..., (steps - 1) s], s = T // steps."""
    stride = num_train_timesteps // steps
    return list(range(0, stride * steps, stride))


def plain_path(first_index: int) -> list[tuple[int, int]]:
    """Grid-index transitions of ordinary sampling: first_index -> ... -> 0 -> -1."""
    return [(i, i - 1) for i in range(first_index, -1, -1)]


@torch.no_grad()
def sample(pipe: Pipeline, prompts: list[str], *, steps: int = 25, eta: float = 0.0, inversion=None,
           attention=None, blending=None, process=None, guidance=(), correction=(),
           generator: torch.Generator | None = None, x_T: torch.Tensor | None = None,
           negative_prompts: list[str] | None = None, return_trajectory: bool = False, clip_x0: bool | None = None):
    """Run the composable sampler; returns the final states x_0 (B, C, H, W) (decode with ``pipe.decode``).

    Args:
        prompts: one prompt per sample (for P2P: pairs [source, target, source, target, ...]).
        steps: DDIM steps; eta: DDIM η (0 deterministic, 1 DDPM-like).
        inversion, attention, blending, process, guidance, correction: the six slots (see the module doc).
        x_T: the starting noise (default: drawn from ``generator``).
        negative_prompts: the "∅" prompts for the unconditional branch (default the null caption "").
        clip_x0: clip x̂_0 to [-1, 1] inside the reverse step (default: on for pixel-space models, off for latent
            ones, as diffusers' ``clip_sample``, and off with an inversion whose ``exact_inverse`` is True, e.g.
            DDIM inversion); guidance losses see the unclipped x̂_0.
    """
    device = pipe.device
    correction = list(correction) if isinstance(correction, (list, tuple)) else [correction]
    guidance = list(guidance) if isinstance(guidance, (list, tuple)) else [guidance]
    b = len(prompts)
    cond = pipe.encode_prompts(list(prompts))
    uncond = pipe.encode_prompts(negative_prompts or [""] * b)
    grid = ddim_grid(pipe.scheduler.config.num_train_timesteps, steps)
    if clip_x0 is None:
        clip_x0 = pipe.vae is None and not getattr(inversion, "exact_inverse", False)
    ctx = StepContext(pipe, cond, uncond, grid, eta, generator, process=process, clip_x0=clip_x0)
    # 1. inversion: where the trajectory starts
    first = len(grid) - 1
    if inversion is not None:
        x, first = inversion.start(ctx)
    else:
        x = x_T.to(device) if x_T is not None else torch.randn(pipe.state_shape(b), generator=generator).to(device)
    path = plain_path(first)
    for c in correction:
        if hasattr(c, "time_path"):
            path = c.time_path(first)
    ctx.num_steps = sum(1 for i, j in path if j < i)
    previous_procs = None
    if attention is not None:
        attention.controller.cfg_doubled = bool(getattr(blending, "doubles_batch", False))
        previous_procs = attn_lib.install(pipe.unet, attention.controller)
    needs_grad = any(getattr(g, "needs_grad", False) for g in guidance)
    trajectory = [x]
    try:
        for i, j in path:
            ctx.x, ctx.index = x, i
            if j > i:  # RePaint jump back in time: x_{j} ~ q(x_j | x_i)
                ratio = ctx.abar(j) / ctx.abar(i)
                x = ratio**0.5 * x + (1 - ratio) ** 0.5 * ctx.randn(x)
                continue
            ctx.noise = ctx.randn(x) if ctx.sigma > 0 else None
            # 2. attention manipulation (inside the network call, through the installed processors)
            if attention is not None:
                attention.begin_step(ctx)
            with torch.set_grad_enabled(needs_grad):
                if needs_grad:
                    ctx.x = x = x.detach().requires_grad_(True)
                # 3. noise blending
                eps = blending.predict_eps(ctx) if blending is not None else pipe.eps(x, ctx.t, cond)
                ctx.eps, ctx.x0 = eps, predict_x0(x, eps, ctx.abar_t)
                # 4. the (revised) reverse step
                x_prev = ctx.reverse_step(eps)
                if attention is not None:
                    x_prev = attention.after_step(ctx, x_prev)  # P2P local blend (its step callback)
                # 5. guidance
                for g in guidance:
                    x_prev = g.guide(ctx, x_prev)
            x_prev = x_prev.detach()
            # 6. conditional correction
            for c in correction:
                x_prev = c.correct(ctx, x_prev)
            x = x_prev
            ctx.step += 1
            if return_trajectory:
                trajectory.append(x)
    finally:
        if previous_procs is not None:
            pipe.unet.set_attn_processor(previous_procs)
    return (x, trajectory) if return_trajectory else x
