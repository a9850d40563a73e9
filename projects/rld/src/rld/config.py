"""The typed training config. Defaults are the official recipe (CIFAR-100, ResNet32x4 -> ResNet8x4, RLD).

``configs/paper/*.yaml`` override the pair (and the ImageNet recipes); ``configs/cpu.yaml`` is the
offline digits default that ``train.py`` uses when no ``--config`` is given. Each method's loss weights
live in their own section (``kd.*``, ``dkd.*``, ``rld.*``, ``lr.*``, ``rc.*``), with the official code's
defaults (``mdistiller/engine/cfg.py`` and the distiller files).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Method = Literal["ce", "kd", "dkd", "la", "lr", "rc", "rld"]
METHODS: tuple[str, ...] = ("ce", "kd", "dkd", "la", "lr", "rc", "rld")


@dataclass
class KDConfig:
    """KD (official ``CFG.KD``); also LA's temperature (``SWAP`` reads ``KD.TEMPERATURE``)."""

    temperature: float = 4.0
    ce_weight: float = 0.1
    kd_weight: float = 0.9


@dataclass
class DKDConfig:
    """DKD (official ``CFG.DKD``)."""

    ce_weight: float = 1.0
    alpha: float = 1.0
    beta: float = 8.0
    temperature: float = 4.0
    warmup: int = 20


@dataclass
class RLDConfig:
    """RLD (official ``CFG.RLD`` and ``tools/train.py`` flags)."""

    ce_weight: float = 1.0
    alpha: float = field(default=1.0, metadata={"help": "SCD weight (0 drops SCD)"})
    beta: float = field(default=8.0, metadata={"help": "MCD weight (0 drops MCD)"})
    alpha_temperature: float = field(default=1.0, metadata={"help": "tau_a, the SCD temperature (ALPHA_T)"})
    temperature: float = field(default=4.0, metadata={"help": "tau, the MCD temperature (T)"})
    warmup: int = 20
    same_t: bool = field(default=False, metadata={"help": "official --same-t: tau_a = tau"})
    strict_mask: bool = field(default=False, metadata={"help": "ablation: M_g (>) instead of M_ge (>=)"})
    logit_stand: bool = field(default=False, metadata={"help": "official --logit-stand (LSKD)"})
    base_temp: float = field(default=2.0, metadata={"help": "with logit_stand: tau = tau_a = base_temp"})
    kd_weight: float = field(default=9.0, metadata={"help": "with logit_stand: alpha, beta scaled by this"})


@dataclass
class LRConfig:
    """LR, label revision (official ``REVISION``: lambda1 = 4, lambda2 = 1, eta = 0.8)."""

    lambda1: float = 4.0
    lambda2: float = 1.0
    eta: float = 0.8


@dataclass
class RCConfig:
    """RC (official ``CFG.RC``)."""

    ce_weight: float = 1.0
    kd_weight: float = 1.0
    rc_weight: float = 0.1
    temperature: float = 4.0


@dataclass
class Config:
    method: Method = field(default="rld", metadata={"help": "ce | kd | dkd | la | lr | rc | rld"})
    dataset: Literal["digits", "cifar100", "imagenet"] = "cifar100"
    data_root: str | None = None
    teacher: str = "resnet32x4"
    student: str = "resnet8x4"
    teacher_checkpoint: str | None = field(
        default="download_ckpts/cifar_teachers/resnet32x4_vanilla/ckpt_epoch_240.pth",
        metadata={"help": "teacher weights (.pth/.pt/.safetensors); digits: None trains one in the run"})
    # solver (official CFG.SOLVER + configs/cifar100/*.yaml)
    epochs: int = 240
    batch_size: int = 64
    test_batch_size: int = 64
    lr: float = 0.05
    lr_decay_stages: tuple[int, ...] = (150, 180, 210)
    lr_decay_rate: float = 0.1
    weight_decay: float = 5e-4
    momentum: float = 0.9
    grad_clip: float = field(default=0.0, metadata={"help": "max gradient norm; 0 = off (official: off)"})
    num_workers: int = 2
    max_steps_per_epoch: int = field(default=0, metadata={"help": "0 = full epochs; >0 caps them (smoke runs)"})
    # offline digits protocol (ignored for real data)
    teacher_epochs: int = 100
    teacher_lr: float = 0.05
    teacher_error_rate: float = field(default=0.0, metadata={"help": "digits: share of train samples whose "
                                                                     "teacher gt logit is swapped with the runner-up"})
    teacher_fraction: float = field(default=1.0, metadata={"help": "digits: share of the train split the teacher sees"})
    student_fraction: float = field(default=1.0, metadata={"help": "digits: share of the train split the student sees"})
    # method sections
    kd: KDConfig = field(default_factory=KDConfig)
    dkd: DKDConfig = field(default_factory=DKDConfig)
    rld: RLDConfig = field(default_factory=RLDConfig)
    lr_revision: LRConfig = field(default_factory=LRConfig)
    rc: RCConfig = field(default_factory=RCConfig)
    # run
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; expected one of {METHODS}")
