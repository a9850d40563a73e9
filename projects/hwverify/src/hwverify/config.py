"""Typed configuration. Dataclass defaults are the paper's recipe (VLM-HV, arXiv 2407.21788, with the
ResNet-18 baseline of the companion SSL-HV code); ``configs/cpu.yaml`` shrinks it to the offline default."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class DataConfig:
    source: Literal["synthetic", "cedar"] = "cedar"
    """``cedar``: CEDAR AND / Letter images under ``--data-root``; ``synthetic``: shared.data.handwriting."""
    image_size: int = 64
    """Side of the square ResNet input (SSL-HV: "lightly-transformed-64"). The VLM and the chain-of-thought
    protocol read the original scans instead."""
    original_size: int = 128
    """Synthetic only: side of the rendered "original" scans (the ResNet's images are resized from them)."""
    n_writers: int = 300
    """Synthetic only: number of writers."""
    samples_per_writer: int = 6
    """Synthetic only: samples of "and" per writer."""
    jitter: float = 1.0
    """Synthetic only: within-writer variation (1 = the tuned default)."""
    val_fraction: float = 0.1
    """Fraction of writers held out for early stopping (writer-disjoint)."""
    test_fraction: float = 0.2
    """Fraction of writers held out for testing, when the root has no train/ test/ split."""
    train_sample_percent: float = 1.0
    """Fraction of training writers whose labels are used (SSL-HV: 0.1 or 1.0)."""


@dataclass
class ResNetConfig:
    embedding_dim: int = 64
    """Embedding head: 512-d ResNet-18 features -> Linear -> 64."""
    hidden_dim: int = 32
    """Pair head: ReLU -> Linear(64, 32) -> ReLU -> Linear(32, 2)."""
    weights: str | None = None
    """Path to torchvision ImageNet weights (resnet18-f37072fd.pth); None = random init."""
    freeze_backbone: bool = True
    """SSL-HV freezes the (pretrained) backbone; conv1 (new, 1-channel) always trains."""
    batch_writers: int = 9
    """Writers per step; all balanced pairs among their samples form the batch (9 writers x 6 samples give
    270 pairs, about SSL-HV's batch of 256 pairs)."""
    lr: float = 1e-3
    max_epochs: int = 200
    patience: int = 10
    """Early stopping on validation F1: epochs without an improvement of at least ``min_delta``."""
    min_delta: float = 0.001


@dataclass
class VLMConfig:
    pretrained: str | None = "google/paligemma-3b-pt-224"
    """A local folder (or Hub id already in the local cache) of a PaliGemma checkpoint; None = tiny config."""
    image_size: int = 224
    """Tiny config: side of the square VLM input (Known on top, Questioned below, each (size/2) x size, resized
    from the original scans). A checkpoint's processor brings its own size (224 for paligemma-3b-pt-224)."""
    tiny_hidden: int = 64
    """Tiny config (pretrained=None): hidden size of SigLIP and Gemma."""
    tiny_layers: int = 2
    tiny_patch: int = 8
    vision_tower: Literal["siglip", "lite0"] = "siglip"
    """Tiny config: a random SigLIP, or the ImageNet EfficientNet-Lite0 of shared.data.pretrained (real weights)."""
    lite0_stage: int = 2
    """Lite0 tower: feature level whose cells are the image tokens (2: stride 8, 40 channels)."""
    tuning: Literal["lora", "full"] = "lora"
    """``lora``: adapters only (the paper); ``full``: every parameter (except a frozen vision tower)."""
    freeze_vision: bool = False
    """Full tuning: keep the vision tower fixed (PaliGemma's fine-tuning recipe freezes the image encoder)."""
    prompt: str = "answer en same writer?"
    """Prefix text; the target suffix is "yes" / "no" (+ an explanation when ``explain``)."""
    explain: bool = False
    """Append a style explanation to the target ("no slant differs") when the data carry style labels."""
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_targets: str = "all-linear"
    """peft ``target_modules``; "all-linear" = every linear layer of both towers."""
    lr: float = 2e-4
    batch_size: int = 16
    epochs: int = 3
    max_train_pairs: int | None = None
    """Cap on training pairs (None = all)."""
    max_new_tokens: int = 24


@dataclass
class Config:
    model: Literal["resnet", "vlm"] = "resnet"
    seed: int = 0
    device: str = "auto"
    data_root: str | None = None
    eval_max_pairs: int | None = None
    """Cap on evaluated test pairs (None = all)."""
    data: DataConfig = field(default_factory=DataConfig)
    resnet: ResNetConfig = field(default_factory=ResNetConfig)
    vlm: VLMConfig = field(default_factory=VLMConfig)
