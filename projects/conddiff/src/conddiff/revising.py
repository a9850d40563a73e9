"""Mechanism 4 -- revising the diffusion process (survey Sec. 4.4): DDNM for linear degradations y = A x.

DDNM (Wang et al. 2023, Eq. 13 / Alg. 1): at each step the clean estimate is split into range and null space of
A and its range part is replaced by the measurement's, x̂_0 ← A†y + (I - A†A) x̂_0(x_t), before the usual
reverse step x_{t-1} = √ᾱ_{t-1} x̂_0 + √(1 - ᾱ_{t-1} - σ_t²) ε_θ + σ_t z. Then A x̂_0 = y exactly, at every step.

Operators (``A``, ``A_pinv`` with A A† A = A) act on pixel images (B, 3, H, W) in [-1, 1]:
:class:`Inpainting` (keep pixels where mask = 1), :class:`SuperResolution` (average pooling by ``factor``;
A† replicates), :class:`Colorization` (channel mean; A† replicates to RGB).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from conddiff.diffusion import ddim_step


@dataclass
class Inpainting:
    mask: torch.Tensor  # (B or 1, 1, H, W), 1 = known pixel

    def A(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.mask.to(x)

    def A_pinv(self, y: torch.Tensor) -> torch.Tensor:
        return y * self.mask.to(y)


@dataclass
class SuperResolution:
    factor: int = 2

    def A(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, self.factor)

    def A_pinv(self, y: torch.Tensor) -> torch.Tensor:
        return F.interpolate(y, scale_factor=self.factor, mode="nearest")


@dataclass
class Colorization:
    def A(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(1, keepdim=True)

    def A_pinv(self, y: torch.Tensor) -> torch.Tensor:
        return y.expand(-1, 3, -1, -1)


def range_null_projection(x0: torch.Tensor, y: torch.Tensor, op) -> torch.Tensor:
    """DDNM's range-null-space decomposition x̂_0 ← A†y + (I - A†A) x̂_0."""
    return op.A_pinv(y) + x0 - op.A_pinv(op.A(x0))


@dataclass
class DDNM:
    """The revised reverse step for measurement ``y`` = A(x) of operator ``op`` (pixel-space models)."""

    op: object
    y: torch.Tensor

    def reverse_step(self, ctx, eps: torch.Tensor) -> torch.Tensor:
        if ctx.pipe.vae is not None:
            raise ValueError("DDNM needs a pixel-space model (A acts on pixels); this pipeline denoises latents")
        x0 = range_null_projection(ctx.predict_x0(eps), self.y.to(ctx.x), self.op)
        return ddim_step(x0, eps, ctx.abar_prev, ctx.sigma, ctx.noise)
