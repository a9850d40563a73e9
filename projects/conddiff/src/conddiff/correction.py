"""Mechanism 6 -- conditional correction (survey Sec. 4.6): correct x_{t-1} towards the condition after each step.

* :class:`RePaint` (Lugmayr et al. 2022, Alg. 1): x_{t-1} = m ⊙ x_{t-1}^known + (1 - m) ⊙ x_{t-1}^unknown with
  x_{t-1}^known ~ N(√ᾱ_{t-1} x_0, (1 - ᾱ_{t-1}) I), plus resampling: jump back in time by ``jump_length``
  grid steps, ``jump_n_sample - 1`` times, x_t ~ N(√(ᾱ_t / ᾱ_{t-1}) x_{t-1}, (1 - ᾱ_t / ᾱ_{t-1}) I) (their
  ``get_schedule_jump``). jump_n_sample = 1 is plain replacement (Score-SDE imputation).
* :class:`ILVR` (Choi et al. 2021, Eq. 8): x_{t-1} ← φ_N(y_{t-1}) + (I - φ_N)(x'_{t-1}), y_{t-1} ~ q(y_{t-1} | y),
  φ_N = down-sampling by N then up-sampling (a linear low-pass filter).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from conddiff.diffusion import add_noise


def repaint_time_path(first_index: int, jump_length: int, jump_n_sample: int) -> list[tuple[int, int]]:
    """RePaint's jump schedule on grid indices (first_index -> ... -> -1) as (from, to) transitions."""
    jumps = {j: jump_n_sample - 1 for j in range(0, first_index + 1 - jump_length, jump_length)}
    path, i = [], first_index
    while i >= 0:
        path.append((i, i - 1))
        i -= 1
        if jumps.get(i, 0) > 0 and i >= 0:
            jumps[i] -= 1
            for _ in range(jump_length):
                path.append((i, i + 1))
                i += 1
    return path


@dataclass
class RePaint:
    """Keep ``known`` (B, C, H, W) where ``mask`` = 1, generate elsewhere."""

    known: torch.Tensor
    mask: torch.Tensor  # (B or 1, 1, H, W)
    jump_length: int = 10
    jump_n_sample: int = 10

    def time_path(self, first_index: int) -> list[tuple[int, int]]:
        return repaint_time_path(first_index, self.jump_length, self.jump_n_sample)

    def correct(self, ctx, x_prev: torch.Tensor) -> torch.Tensor:
        known = ctx.pipe.encode(self.known.to(x_prev))
        known_t = add_noise(known, ctx.randn(known), ctx.abar_prev)
        m = self.mask.to(x_prev)
        if m.shape[-1] != x_prev.shape[-1]:
            m = F.interpolate(m, size=x_prev.shape[-2:], mode="nearest")
        return m * known_t + (1 - m) * x_prev


def low_pass(x: torch.Tensor, factor: int) -> torch.Tensor:
    """φ_N: average-pool by N, then nearest up-sample (idempotent: φ_N ∘ φ_N = φ_N)."""
    return F.interpolate(F.avg_pool2d(x, factor), scale_factor=factor, mode="nearest")


@dataclass
class ILVR:
    """Match the low frequencies of a reference image y (B, 3, H, W) at every step."""

    reference: torch.Tensor
    factor: int = 4

    def correct(self, ctx, x_prev: torch.Tensor) -> torch.Tensor:
        y = ctx.pipe.encode(self.reference.to(x_prev))
        y_prev = add_noise(y, ctx.randn(y), ctx.abar_prev)
        return low_pass(y_prev, self.factor) + x_prev - low_pass(x_prev, self.factor)
