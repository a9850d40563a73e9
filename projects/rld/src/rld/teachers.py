"""Teachers: loading real checkpoints from a local file, and the offline digits teacher and its mistakes."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from rld.config import Config
from rld.data import DigitsSplits, inject_teacher_mistakes
from rld.engine import TensorBatches, make_optimizer, predict
from shared.runs import progress

TEACHER_HELP = (
    "CIFAR-100 teachers: the mdistiller release 'cifar_teachers.tar' (github.com/megvii-research/mdistiller/"
    "releases), unpacked so that e.g. download_ckpts/cifar_teachers/resnet32x4_vanilla/ckpt_epoch_240.pth exists; "
    "ImageNet teachers: torchvision's ResNet34/ResNet50 weight files (e.g. resnet34-b627a593.pth). A teacher "
    "trained by this project's train.py (--method ce) is its run's checkpoints/best.safetensors.")


def load_teacher_weights(model: nn.Module, path: str | Path | None) -> nn.Module:
    """Load teacher weights from a local file into ``model`` (strict) and freeze it in eval mode.

    Accepts a safetensors file written by this project (keys ``student.*``/``teacher.*``/``model.*`` or bare),
    or a torch file (``.pth``/``.pt``) holding a state dict, possibly under ``"model"`` or ``"state_dict"``
    (mdistiller's format) and possibly with DataParallel's ``module.`` prefix. Loaded with ``weights_only``.
    """
    if path is None or not Path(path).is_file():
        raise FileNotFoundError(f"teacher checkpoint '{path}' does not exist. {TEACHER_HELP}")
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
            for key in ("model", "state_dict"):
                if isinstance(state, dict) and isinstance(state.get(key), dict):
                    state = state[key]
    except Exception as err:  # safetensors and the unpickler raise several error types on a damaged file
        raise ValueError(f"teacher checkpoint '{path}' is corrupt or not a weights file: {err}") from err
    if not isinstance(state, dict):
        raise ValueError(f"teacher checkpoint '{path}' holds {type(state).__name__}, expected a state dict")
    for prefix in ("teacher.", "student.", "model.", "module."):
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
            break
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ValueError(f"teacher checkpoint '{path}' does not match the teacher architecture: {err}") from err
    return model.eval().requires_grad_(False)


def train_digits_teacher(cfg: Config, teacher: nn.Module, splits: DigitsSplits, device: torch.device,
                         quiet: bool = True) -> nn.Module:
    """Train the offline teacher with plain CE on its part of the train split (SGD, constant LR)."""
    optimizer = make_optimizer(cfg, teacher, lr=cfg.teacher_lr)
    batches = TensorBatches(splits.teacher_x, splits.teacher_y, cfg.batch_size)
    teacher.train()
    for _ in progress(range(cfg.teacher_epochs), desc="teacher", quiet=quiet):
        for x, y, _ in batches:
            loss = nn.functional.cross_entropy(teacher(x.to(device)), y.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return teacher.eval().requires_grad_(False)


def digits_teacher_logits(cfg: Config, teacher: nn.Module, splits: DigitsSplits,
                          device: torch.device) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
    """The teacher's logits on the student's training samples, with ``cfg.teacher_error_rate`` injected mistakes.

    Digits have no augmentation, so the logits are computed once and looked up by sample index. The
    injection uses its own generator (seeded by ``cfg.seed``), so it is identical across methods.

    Returns:
        the logits (N, C) on the CPU, the boolean mask of corrupted samples (N,), and stats: the teacher's
        train error before and after the injection and its test accuracy.
    """
    batches = TensorBatches(splits.student_x, splits.student_y, 512, shuffle=False)
    logits, labels = predict(teacher, batches, device)
    natural_error = (logits.argmax(1) != labels).float().mean().item()
    generator = torch.Generator().manual_seed(10_007 * cfg.seed + 1)
    logits, corrupted = inject_teacher_mistakes(logits, labels, cfg.teacher_error_rate, generator)
    test_logits, test_labels = predict(teacher, TensorBatches(splits.test_x, splits.test_y, 512, shuffle=False), device)
    stats = {"teacher_natural_train_error": natural_error,
             "teacher_train_error": (logits.argmax(1) != labels).float().mean().item(),
             "teacher_test_acc": (test_logits.argmax(1) == test_labels).float().mean().item()}
    return logits, corrupted, stats
