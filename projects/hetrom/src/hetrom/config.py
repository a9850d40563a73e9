"""The typed configuration of a HeTRoM run.

The paper's own hyper-parameters are not known to us (the spec could not check its experimental section);
the defaults are the MAML sinusoid recipe (Finn et al., 2017, Sec. 5.1, 70,000 meta-iterations) with the
contamination of our offline plan. ``configs/paper.yaml`` spells out this full recipe; ``configs/cpu.yaml``
(3,000 meta-iterations) is the offline default of ``uv run train.py``; ``configs/fewshot_glyphs.yaml``,
``configs/omniglot.yaml`` and ``configs/miniimagenet.yaml`` are the classification runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class HetromConfig:
    # ---- task family ------------------------------------------------------------------------------------
    task: Literal["sinusoid", "fewshot"] = field(default="sinusoid", metadata={"help": "regression or N-way K-shot"})
    dataset: Literal["glyphs", "omniglot", "miniimagenet"] = field(
        default="glyphs", metadata={"help": "few-shot images: procedural glyphs (offline) or a --data-root"})
    # ---- method -----------------------------------------------------------------------------------------
    method: Literal["hetrom", "sg", "maml"] = field(
        default="hetrom", metadata={"help": "hetrom: ranks m+1..k; sg: statistical thresholds; maml: mean"})
    m: int = field(default=8, metadata={"help": "HeTRoM: drop the m largest task losses"})
    k: int = field(default=25, metadata={"help": "HeTRoM: keep ranks up to k (drop the n-k smallest)"})
    sg_lower: float = field(default=2.0, metadata={"help": "sg: keep log-loss >= mu - sg_lower * std"})
    sg_upper: float = field(default=1.0, metadata={"help": "sg: keep log-loss <= mu + sg_upper * std"})
    sg_log_space: bool = field(default=True, metadata={"help": "sg: statistics of log losses (log-normal)"})
    baseline: Literal["maml", "none"] = field(
        default="maml", metadata={"help": "also train MAML in lockstep on the same tasks, same init"})
    # ---- bi-level optimisation --------------------------------------------------------------------------
    meta_batch: int = field(default=25, metadata={"help": "n, tasks per meta-batch"})
    inner_steps: int = field(default=1, metadata={"help": "inner SGD steps during meta-training"})
    inner_lr: float = field(default=0.01, metadata={"help": "alpha, inner SGD step size"})
    first_order: bool = field(default=False, metadata={"help": "first-order MAML (no second derivatives)"})
    outer_lr: float = field(default=1e-3, metadata={"help": "beta, Adam step size of the meta-update"})
    iterations: int = field(default=70000, metadata={"help": "meta-iterations (MAML sinusoid: 70,000)"})
    # ---- sinusoid regression ----------------------------------------------------------------------------
    n_support: int = 10
    n_query: int = 10
    noisy_rate: float = field(default=0.2, metadata={"help": "fraction of noisy (label-noise) training tasks"})
    outlier_rate: float = field(default=0.1, metadata={"help": "fraction of outlier training tasks"})
    easy_rate: float = field(default=0.0, metadata={"help": "fraction of easy (small-amplitude) training tasks"})
    noise_std: float = field(default=3.0, metadata={"help": "label-noise std of noisy sinusoid tasks"})
    hidden: int = field(default=40, metadata={"help": "MLP width (sinusoid)"})
    # ---- few-shot classification ------------------------------------------------------------------------
    n_way: int = 5
    k_shot: int = 1
    k_query: int = 15
    label_noise: float = field(default=0.5, metadata={"help": "per-label flip probability in noisy tasks"})
    image_size: int = 28
    filters: int = field(default=64, metadata={"help": "ConvNet filters per block"})
    conv_blocks: int = 4
    downsample: Literal["max", "stride"] = field(
        default="max", metadata={"help": "ConvNet: 2x2 max-pool (mini-ImageNet) or stride-2 convs (MAML Omniglot)"})
    rotations: bool = field(
        default=False, metadata={"help": "Omniglot: rotations by 0/90/180/270 degrees are new classes (MAML)"})
    glyph_classes: int = field(default=1000, metadata={"help": "classes of the glyph alphabet"})
    glyph_train_classes: int = field(default=800, metadata={"help": "glyph classes for meta-training"})
    # ---- evaluation (clean test tasks) -------------------------------------------------------------------
    eval_tasks: int = field(default=1000, metadata={"help": "fixed clean test tasks"})
    eval_steps: tuple[int, ...] = field(default=(1, 10), metadata={"help": "adaptation steps at test time"})
    eval_seed: int = field(default=12345, metadata={"help": "seed of the fixed test tasks"})
    eval_every: int = 500
    # ---- run --------------------------------------------------------------------------------------------
    seed: int = 0
    device: str = "auto"
    data_root: str | None = None
    log_every: int = 100
    ckpt_every: int = 500

    def validate(self) -> None:
        """Raise ``ValueError`` on an inconsistent configuration (before anything is written)."""
        if self.method == "hetrom" and not 0 <= self.m < self.k <= self.meta_batch:
            raise ValueError(f"HeTRoM needs 0 <= m < k <= meta_batch, got m={self.m}, k={self.k}, "
                             f"meta_batch={self.meta_batch}")
        for name in ("meta_batch", "iterations", "eval_tasks", "log_every", "ckpt_every", "eval_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.inner_steps < 0 or any(s < 0 for s in self.eval_steps) or not self.eval_steps:
            raise ValueError("inner_steps and eval_steps must be >= 0 (eval_steps non-empty)")
        glyphs = self.task == "fewshot" and self.dataset == "glyphs"
        if glyphs and not 0 < self.glyph_train_classes < self.glyph_classes:
            raise ValueError("glyph_train_classes must lie in (0, glyph_classes)")
        if self.task == "fewshot" and self.easy_rate > 0:
            raise ValueError("easy tasks are defined for the sinusoid task only; set easy_rate=0")
