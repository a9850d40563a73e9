"""The typed configuration. Defaults of the SFD fields are the official ones (``sfd-main/launch.sh``, CIFAR-10,
2 NFE); the teacher fields describe the small EDM teachers trained here for the offline defaults."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from sfd.distill import Schedule
from sfd.networks import EDMPrecond, MLPNet, TinyUNet


@dataclass
class Config:
    # ---- data and teacher ------------------------------------------------------------------------------
    dataset: Literal["digits", "toy2d", "cifar10"] = "digits"
    teacher_path: str | None = None  # run folder (or .safetensors) of a trained teacher; cifar10: diffusers folder
    seed: int = 0
    device: str = "auto"
    data_root: str | None = None  # cifar10 only: the FID reference images
    inception_path: str | None = None  # cifar10 only: inception-2015-12-05.pt for FID
    arch: Literal["mlp", "unet"] = "mlp"  # raw network F of the offline teachers
    width: int = 256  # MLP width / UNet base channels
    depth: int = 3  # MLP residual blocks
    sigma_data: float = 0.5  # EDM σ_data: 0.5 for images in [−1, 1], 1.0 for the unit-scale ring
    teacher_iters: int = 6000
    teacher_batch: int = 256
    teacher_lr: float = 1e-3
    teacher_ema: float = 0.999
    p_mean: float = -1.2
    p_std: float = 1.2
    # ---- SFD (official defaults) -----------------------------------------------------------------------
    num_steps: int = 4  # student timestamps; NFE = num_steps − 2 with AFS
    M: int = 3  # intermediate teacher steps: K = M + 1 teacher steps per student step
    afs: bool = True
    teacher_solver: Literal["dpmpp", "euler", "heun", "dpm2", "ipndm"] = "dpmpp"
    teacher_afs: bool = False
    max_order: int = 3
    thresholding: bool = True  # dynamic thresholding of DPM-Solver++ x0 (official; images only)
    sigma_min: float = 0.006
    sigma_max: float = 80.0
    rho: float = 7.0
    loss: Literal["l1", "l2"] = "l1"
    global_view: bool = True  # student steps from its own outputs (False: teacher-forced "local" ablation)
    step_condition: bool = False  # SFD-v
    step_choices: tuple[int, ...] = (4, 5, 6, 7)  # SFD-v: num_steps drawn per iteration (NFE 2–5 with AFS)
    lr: float = 5e-5
    batch: int = 128
    total_kimg: float = 200.0  # teacher trajectories, in thousands; lr ÷ 10 after half
    second_stage: bool = False  # 1-NFE stage: teacher_path is a first-stage SFD run, its student the teacher
    lpips_path: str | None = None  # second stage: LPIPS weights (optional)
    ckpt_every: int = 100
    # ---- evaluation ------------------------------------------------------------------------------------
    eval_samples: int = 2000
    classifier_steps: int = 400  # digits: training steps of the feature classifier (fixed seed)
    ref_steps: int = 101  # teacher reference: Heun on this many timestamps (~2·ref_steps NFE)

    @property
    def schedule(self) -> Schedule:
        return Schedule(self.sigma_min, self.sigma_max, self.rho)

    @property
    def distill_iters(self) -> int:
        return max(1, math.ceil(self.total_kimg * 1000 / self.batch))

    def validate(self) -> None:
        if self.num_steps < 2 + int(self.afs):
            raise ValueError(f"num_steps={self.num_steps} leaves no network call (afs={self.afs})")
        if self.step_condition and min(self.step_choices) < 2 + int(self.afs):
            raise ValueError(f"step_choices {self.step_choices} must all be >= {2 + int(self.afs)}")
        if self.dataset == "cifar10" and self.teacher_path is None:
            raise ValueError("dataset=cifar10 needs teacher_path=<folder of a diffusers DDPM UNet2DModel>")


def raw_net_builder(cfg: Config):
    """A constructor ``build(step_condition=...)`` of the raw network F for the offline datasets."""
    if cfg.dataset not in ("toy2d", "digits"):
        raise ValueError(f"no built-in network for dataset {cfg.dataset!r} (its teacher is loaded from teacher_path)")
    if cfg.arch == "unet":
        if cfg.dataset != "digits":
            raise ValueError("arch=unet is for images (dataset=digits); use arch=mlp for toy2d")
        return lambda step_condition=False: TinyUNet(1, cfg.width, step_condition=step_condition)
    dim = 2 if cfg.dataset == "toy2d" else 64
    return lambda step_condition=False: MLPNet(dim, cfg.width, cfg.depth, step_condition=step_condition)


def build_denoiser(cfg: Config, step_condition: bool = False) -> EDMPrecond:
    return EDMPrecond(raw_net_builder(cfg)(step_condition=step_condition), cfg.sigma_data)
