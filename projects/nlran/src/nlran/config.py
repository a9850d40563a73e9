"""The typed configuration of train.py / eval.py / reproduce.py.

Defaults are the paper's recipe where the paper states it and otherwise our reconstruction of it at full
scale (``configs/paper.yaml`` spells it out); ``configs/cpu.yaml`` is the offline CPU default that
``train.py`` uses when no ``--config`` is given. Fields the paper does not pin down are marked
"[unknown]" and listed in the README's Deviations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Arch = Literal["nlran", "nlran_no_nonlocal", "nlran_no_attention", "resnet3d", "cbam3d", "covnet"]


@dataclass
class Config:
    # --- model -------------------------------------------------------------------------------------
    arch: Arch = field(default="nlran", metadata={"help": "NL-RAN, its two ablations, or a baseline"})
    widths: tuple[int, ...] = field(default=(64, 256, 512, 1024, 2048),
                                    metadata={"help": "NL-RAN stem + 4 stage widths (RAN-56's) [unknown]"})
    stem_stride: int = 2
    stem_pool: bool = True
    p: int = field(default=1, metadata={"help": "RAN: pre/post residual units per attention module"})
    t: int = field(default=2, metadata={"help": "RAN: residual units in the trunk branch"})
    r: int = field(default=1, metadata={"help": "RAN: residual units between poolings in the mask branch"})
    expansion: int = field(default=4, metadata={"help": "bottleneck expansion of residual units (RAN: 4)"})
    final_units: int = field(default=2, metadata={"help": "stage-4 units after its first unit (RAN-56: 2)"})
    stage_strides: tuple[int, int, int] = field(default=(2, 2, 2),
                                                metadata={"help": "strides of stages 2-4 (RAN: 2, 2, 2)"})
    zero_init_residual: bool = field(default=True, metadata={
        "help": "last conv of every residual unit starts at 0, so units start as the identity [unknown]"})
    nonlocal_sub_sample: bool = field(default=True, metadata={
        "help": "max-pool the non-local block's input 2x before phi and g (official USE_MAXPOOL)"})
    nonlocal_scale: bool = field(default=True, metadata={
        "help": "scale the non-local affinities by d^-1/2 (official code USE_SCALE; NL-RAN's formula: no scale)"})
    dropout: float = 0.0
    baseline_widths: tuple[int, int, int, int] = field(default=(64, 128, 256, 512),
                                                       metadata={"help": "ResNet/CBAM/COVNet stage widths"})
    baseline_layers: tuple[int, int, int, int] = field(default=(2, 2, 2, 2),
                                                       metadata={"help": "blocks per stage (ResNet-18) [unknown]"})
    baseline_conv1_stride: int = field(default=2, metadata={"help": "stride of the baselines' first conv"})
    baseline_max_pool: bool = field(default=True, metadata={"help": "max-pool after the baselines' first conv"})
    baseline_stage_strides: tuple[int, int, int] = field(
        default=(2, 2, 2), metadata={"help": "strides of the 3-D baselines' stages 2-4 (ResNet: 2, 2, 2)"})
    baseline_stem_width: int = field(default=0, metadata={
        "help": "channels of the 3-D baselines' stem conv (0: the first stage width, as ResNet)"})
    # --- data --------------------------------------------------------------------------------------
    dataset: Literal["phantom", "ccccii"] = field(default="ccccii",
                                                  metadata={"help": "phantom (offline) or CC-CCII (--data-root)"})
    data_root: str | None = None
    volume_size: tuple[int, int, int] = field(default=(64, 128, 128), metadata={"help": "(D, H, W) [unknown]"})
    hu_window: tuple[float, float] = field(default=(-1200.0, 600.0), metadata={"help": "HU window [unknown]"})
    n_volumes: int = field(default=600, metadata={"help": "phantom volumes (balanced classes)"})
    split: tuple[float, float, float] = field(default=(0.8, 0.1, 0.1), metadata={"help": "train/val/test"})
    split_sizes: tuple[int, int, int] | None = field(default=None, metadata={
        "help": "phantom only: train/val/test volume counts (replace n_volumes and split)"})
    # --- optimisation (all [unknown] in the paper) ---------------------------------------------------
    epochs: int = 100
    batch_size: int = 8
    lr: float = 1e-4
    weight_decay: float = 1e-4
    num_workers: int = 0
    # --- run -----------------------------------------------------------------------------------------
    seed: int = 0
    device: str = "auto"
    latency_runs: int = field(default=20, metadata={"help": "timed single-volume forward passes"})
