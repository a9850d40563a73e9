"""The configuration dataclass: defaults are the paper's recipe (official README / SJEDD_train_FFpp.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass
class Config:
    seed: int = 0
    device: str = "auto"
    dataset: Literal["lists", "faces_synth"] = "lists"
    """lists: the paper's data as list files under ``data_root`` (data.ListFileDataset); faces_synth: the offline
    synthetic faces (configs/cpu.yaml), which read no data root."""
    data_root: str | None = None  # list-file dataset root (dataset=lists)
    method: Literal["sjedd", "fixed", "binary"] = "sjedd"
    """sjedd: joint embedding + bi-level task weights; fixed: joint embedding, fixed weights; binary: baseline."""
    clip: str | None = None  # real CLIP folder or hub id (paper: ViT-B/32); None = a tiny CLIP from `tiny`
    normalize: bool = False  # ablation: cosine similarity x learnable scale instead of the official <v, t> / 10
    image_tower: Literal["clip", "cnn"] = "clip"
    """clip: CLIP's own image tower (the paper's ViT-B/32, or the tiny ViT); cnn: a small ResNet from scratch
    projected into the same joint embedding (model.ConvImageTower; the official ``--VM RN50`` analogue)."""
    cnn_widths: tuple[int, ...] = (16, 32, 64, 128)  # image_tower=cnn: one conv-BN-ReLU-maxpool block per width

    # optimisation (paper: AdamW lr 6e-7, wd 1e-3, cosine T_max 5 per epoch, 20 epochs, batch 32)
    epochs: int = 20
    batch_size: int = 32
    lr: float = 6e-7
    weight_decay: float = 1e-3
    cosine_t_max: int = 5
    fixed_weights: tuple[float, float, float] = (1.0, 1.0, 1.0)  # method=fixed: L1 + L2 + L3 (unweighted)
    autol_init: float = 1.0  # Auto-lambda init and Adam lr (official README values)
    autol_lr: float = 1e-3
    meta_every: int = 1  # one lambda update every this many steps (paper: every step); a CPU-budget lever
    aug: bool = True  # the official augmentation set with p = aug_prob
    aug_prob: float = 0.3

    # data
    image_size: int = 224  # CLIP input (real data is resized to it)
    n_frames: int = 32  # frames per video for video-level AUC (README uses 64)
    train_list: str = "train"
    test_lists: tuple[str, ...] = ("test",)

    # offline default (configs/cpu.yaml): synthetic faces and a tiny CLIP
    train_videos: int = 240
    test_videos: int = 60
    frames_per_video: int = 4
    face_size: int = 64
    tiny_width: int = 64
    tiny_layers: int = 2
    tiny_patch: int = 8
    tiny_projection: int = 32
    tiny_init: str | None = None
    """A tiny CLIP pretrained by ``pretrain.py`` (safetensors; relative paths are read from the project folder) to
    fine-tune from, as the paper fine-tunes OpenAI's pretrained CLIP; None = random initialisation."""


@dataclass
class PretrainConfig:
    """``pretrain.py``: CLIP's contrastive objective on real synthetic faces and generic captions
    (:mod:`sjedd.captions`), the offline stand-in for OpenAI's CLIP pretraining (README, Deviations)."""

    seed: int = 0
    device: str = "auto"
    n_images: int = 12000  # real frames, one per video
    identities: tuple[int, int] = (1000, 6000)  # [first, last): disjoint from the detector's identities 0-39
    family: str = "toon"  # the in-domain family; ``shaded`` stays unseen (the cross-family test)
    face_size: int = 64
    tiny_width: int = 64
    tiny_layers: int = 2
    tiny_patch: int = 8
    tiny_projection: int = 32
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.1
    held_out: int = 512  # frames kept out of training to measure caption retrieval
