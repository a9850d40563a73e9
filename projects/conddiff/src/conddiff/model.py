"""The base text-to-image model: a diffusers ``UNet2DConditionModel`` in pixel space plus its noise schedule.

The survey's "training" stage (Sec. 3.1, text-to-image): an ε-prediction denoiser ε_θ(x_t, t, c) conditioned on
the caption through cross-attention, trained with the DDPM objective and condition dropout (the null caption
"" stands for ∅, so that classifier-free guidance works at sampling time).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class UNetConfig:
    """Size of the pixel-space UNet (cross-attention at the lower resolutions)."""

    image_size: int = 32
    block_out_channels: tuple[int, ...] = (32, 64, 64)
    cross_attn_levels: tuple[bool, ...] = (False, True, True)
    layers_per_block: int = 1
    heads: int = 4
    norm_groups: int = 8


@dataclass
class ScheduleConfig:
    """DDPM noise schedule (diffusers names)."""

    num_train_timesteps: int = 1000
    beta_schedule: str = "squaredcos_cap_v2"
    beta_start: float = 0.0001
    beta_end: float = 0.02


@dataclass
class ModelConfig:
    unet: UNetConfig = field(default_factory=UNetConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)


def build_unet(cfg: UNetConfig, cross_attention_dim: int, in_channels: int = 3):
    if len(cfg.block_out_channels) != len(cfg.cross_attn_levels):
        raise ValueError("unet.block_out_channels and unet.cross_attn_levels need the same length, got "
                         f"{cfg.block_out_channels} and {cfg.cross_attn_levels}")
    down = tuple("CrossAttnDownBlock2D" if a else "DownBlock2D" for a in cfg.cross_attn_levels)
    up = tuple("CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(cfg.cross_attn_levels))
    from diffusers import UNet2DConditionModel  # lazy: --help and config parsing do not import diffusers

    return UNet2DConditionModel(
        sample_size=cfg.image_size, in_channels=in_channels, out_channels=in_channels,
        layers_per_block=cfg.layers_per_block, block_out_channels=tuple(cfg.block_out_channels),
        down_block_types=down, up_block_types=up, cross_attention_dim=cross_attention_dim,
        attention_head_dim=cfg.heads, norm_num_groups=cfg.norm_groups,
    )


def build_scheduler(cfg: ScheduleConfig):
    """The schedule as a diffusers ``DDIMScheduler`` (saved with the model; our sampler reads its ᾱ_t)."""
    from diffusers import DDIMScheduler

    return DDIMScheduler(
        num_train_timesteps=cfg.num_train_timesteps, beta_schedule=cfg.beta_schedule, beta_start=cfg.beta_start,
        beta_end=cfg.beta_end, prediction_type="epsilon", clip_sample=False, set_alpha_to_one=True,
    )


def count_parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
