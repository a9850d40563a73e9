"""Typed configuration. Defaults are the paper's recipe (``configs/paper.yaml`` spells it out); the offline CPU
default is ``configs/cpu.yaml``."""

from __future__ import annotations

from dataclasses import dataclass, field

from x2dfd.mllm import TinyLlavaConfig


@dataclass
class DataConfig:
    dataset: str = "offline"  # "offline" (shared.data.faces_synth) or "deepfakebench" (--data-root)
    size: int = 64  # face crop side in pixels
    frames_per_video: int = 4
    train_videos: int = 96
    test_videos: int = 48
    train_families: tuple[str, ...] = ("toon",)
    # FF++ analogue: identity swap (DeepFakes/FaceSwap) and expression warp (Face2Face/NeuralTextures), half real
    train_manipulations: tuple[str, ...] = ("real", "id", "real", "expr_mouth")
    # held-out manipulation types (blending-based and local edits) on held-out identities of the same family
    unseen_manipulations: tuple[str, ...] = ("real", "sbi", "real", "phys_eyes", "real", "phy_nose", "real",
                                             "phy_mouth")
    # a held-out face family (another generator style) with every manipulation
    unseen_family: str = "shaded"
    # real data (DeepfakeBench layout): train dataset and cross-dataset test sets
    train_set: str = "FaceForensics++"
    test_sets: tuple[str, ...] = ("Celeb-DF-v2", "DFD", "DFDC", "DFDCP", "UADFV")
    frames_per_real_video: int = 8


@dataclass
class ExpertConfig:
    """The WFS blending detector (SFD), trained on Self-Blended Images of the training reals."""

    arch: str = "small_cnn"  # or a timm name: the official SFD is swinv2_base_window16_256
    weights: str | None = None  # a trained state dict (official: best_gf.pth); None = train it here
    image_size: int = 64
    epochs: int = 8
    batch_size: int = 32  # half real, half SBI of the same frames
    lr: float = 1e-3
    alias: str = "Blending"
    lo: float = 0.30
    hi: float = 0.70


@dataclass
class MFAConfig:
    n_images: int = 96  # labelled images the questions are scored on
    threshold: float = 0.5
    top_k: int = 3  # official default of qa_accuracy.py


@dataclass
class SFSConfig:
    # "mllm": the base MLLM writes it from the label-conditioned prompt (official); "assessed": the statements of
    # the MFA top-k features in the form the base MLLM itself answers for this image (label-conditioned choice);
    # "template": the top-k statements chosen by the ground-truth manipulated regions (no model assessment)
    explanation: str = "mllm"
    max_new_tokens: int = 512  # official annotation setting


@dataclass
class PretrainConfig:
    """Offline only: attribute-caption pre-training of the tiny base MLLM before MFA (``x2dfd.pretrain``), the
    stand-in for LLaVA's web-scale pre-training. Off for a real LLaVA checkpoint (it already knows)."""

    enabled: bool = False
    n_images: int = 480
    questions_per_image: int = 6
    epochs: int = 3
    batch_size: int = 16
    lr: float = 2e-3


@dataclass
class LoraConfig:
    """LLaVA LoRA fine-tuning (official quick_train.sh / config.yaml)."""

    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    lr: float = 2e-4
    projector_lr: float = 2e-5
    weight_decay: float = 0.0
    warmup_ratio: float = 0.03
    epochs: int = 1
    batch_size: int = 2


@dataclass
class Config:
    seed: int = 0
    device: str = "auto"
    data_root: str | None = None
    mllm: str = "llava-hf/llava-1.5-7b-hf"  # a local llava-hf folder / cached hub id, or "tiny"
    dtype: str = "float32"  # MLLM weights: float32, bfloat16 or float16 (the official training runs in bf16)
    tiny: TinyLlavaConfig = field(default_factory=TinyLlavaConfig)
    data: DataConfig = field(default_factory=DataConfig)
    expert: ExpertConfig = field(default_factory=ExpertConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    mfa: MFAConfig = field(default_factory=MFAConfig)
    sfs: SFSConfig = field(default_factory=SFSConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    use_sfs: bool = True  # explanations from the top-k MFA features in the answers
    use_wfs: bool = True  # blending-expert score in the question + answer supplement
    # an earlier run of the same seed/model/data whose base MLLM, MFA ranking and expert are loaded instead of
    # recomputed (reproduce.py: the variants of one seed share them)
    reuse_from: str | None = None
    nan_at_step: int = 0  # > 0: make the LoRA loss NaN at this step (tests the divergence guard)
    eval_batch_size: int = 64
    n_explanations: int = 6  # explanations generated per test split at evaluation
    explanation_tokens: int = 48
