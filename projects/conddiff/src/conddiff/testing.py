"""A tiny randomly initialised pipeline for tests and smoke runs (16x16 images, seconds on a CPU)."""

from __future__ import annotations

import torch

from conddiff.model import ModelConfig, UNetConfig, build_scheduler, build_unet
from conddiff.pipeline import Pipeline
from conddiff.text import TextConfig, build_text_encoder, build_tokenizer

PROMPT = "a big red circle on the left on a gray background"


def tiny_pipe(seed: int = 0) -> Pipeline:
    torch.manual_seed(seed)
    tok = build_tokenizer(32)
    te = build_text_encoder(TextConfig(hidden_size=16, layers=1, heads=2), tok)
    unet = build_unet(UNetConfig(image_size=8, block_out_channels=(8, 16), cross_attn_levels=(True, True), heads=2,
                                 norm_groups=4), 16, in_channels=12)
    return Pipeline(unet, te, tok, build_scheduler(ModelConfig().schedule), None, 2, 16).eval()
