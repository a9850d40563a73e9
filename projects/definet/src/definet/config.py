"""The training configuration. Defaults are the paper's recipe (official ``train.py``); ``configs/cpu.yaml``
is the offline CPU default that ``train.py`` uses when no ``--config`` is given."""

from __future__ import annotations

from dataclasses import dataclass, field

from definet.data import DataConfig
from definet.losses import LossConfig
from definet.model import ModelConfig


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    epochs: int = 99  # the official loop runs epochs 1..99 (range(1, 100))
    batch_size: int = 16
    lr: float = 2e-4  # Adam
    clip: float = 0.5  # official clip_gradient: clamps every gradient element to [-clip, clip]
    plateau_patience: int = 5  # ReduceLROnPlateau(mode="max") on validation AUC
    plateau_factor: float = 0.5
    save_every: int = 50  # epochs between numbered checkpoints (official: every 50)
    seed: int = 0
    device: str = "auto"
    data_root: str | None = None  # a real dataset in the official layout; read when data.source == "folder"
