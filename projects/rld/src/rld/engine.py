"""One training loop for every method: the per-method objective, the LR schedule, an epoch, evaluation."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rld import losses
from rld.config import Config
from shared.runs import guard_finite, progress

TeacherFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``teacher_fn(images, sample_indices) -> teacher logits`` (a forward pass, or a cached lookup)."""


def objective(cfg: Config, student_logits: torch.Tensor, teacher_logits: torch.Tensor, target: torch.Tensor,
              epoch: int) -> torch.Tensor:
    """The training loss of ``cfg.method`` with the official per-method weights (``epoch`` is 1-based)."""
    method = cfg.method
    if method == "ce":
        return F.cross_entropy(student_logits, target)
    if method == "kd":
        k = cfg.kd
        return losses.kd_loss(student_logits, teacher_logits, target, temperature=k.temperature,
                              ce_weight=k.ce_weight, kd_weight=k.kd_weight)
    if method == "dkd":
        d = cfg.dkd
        return losses.dkd_loss(student_logits, teacher_logits, target, epoch, ce_weight=d.ce_weight, alpha=d.alpha,
                               beta=d.beta, temperature=d.temperature, warmup=d.warmup)
    if method == "la":
        return losses.la_loss(student_logits, teacher_logits, target, temperature=cfg.kd.temperature)
    if method == "lr":
        r = cfg.lr_revision
        return losses.lr_loss(student_logits, teacher_logits, target, lambda1=r.lambda1, lambda2=r.lambda2, eta=r.eta)
    if method == "rc":
        c = cfg.rc
        return losses.rc_loss(student_logits, teacher_logits, target, temperature=c.temperature,
                              ce_weight=c.ce_weight, kd_weight=c.kd_weight, rc_weight=c.rc_weight)
    if method == "rld":
        return losses.rld_loss(student_logits, teacher_logits, target, epoch, **rld_weights(cfg))
    raise ValueError(f"unknown method {method!r}")


def rld_weights(cfg: Config) -> dict:
    """RLD's keyword arguments after the official ``--same-t`` and ``--logit-stand`` flags.

    ``same_t``: ``tau_a = tau``. ``logit_stand`` (LSKD): ``alpha`` and ``beta`` multiplied by ``kd_weight``,
    and ``tau = tau_a = base_temp``.
    """
    r = cfg.rld
    alpha, beta, tau_a, tau = r.alpha, r.beta, r.alpha_temperature, r.temperature
    if r.same_t:
        tau_a = tau
    if r.logit_stand:
        alpha, beta, tau_a, tau = alpha * r.kd_weight, beta * r.kd_weight, r.base_temp, r.base_temp
    return dict(ce_weight=r.ce_weight, alpha=alpha, beta=beta, alpha_temperature=tau_a, temperature=tau,
                warmup=r.warmup, strict=r.strict_mask, logit_stand=r.logit_stand)


def learning_rate(cfg: Config, epoch: int) -> float:
    """Step schedule of mdistiller's ``adjust_learning_rate``: ``lr * rate ** #{stages < epoch}`` (1-based)."""
    steps = int(np.sum(epoch > np.asarray(cfg.lr_decay_stages, dtype=float))) if cfg.lr_decay_stages else 0
    return cfg.lr * cfg.lr_decay_rate**steps


class TensorBatches:
    """Shuffled mini-batches ``(x, y, index)`` of in-memory tensors (torch's global RNG, so resumable)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, shuffle: bool = True):
        if len(x) != len(y):
            raise ValueError(f"{len(x)} inputs but {len(y)} labels")
        self.x, self.y, self.batch_size, self.shuffle = x, y, batch_size, shuffle

    def __len__(self) -> int:
        return (len(self.x) + self.batch_size - 1) // self.batch_size

    def __iter__(self):
        order = torch.randperm(len(self.x)) if self.shuffle else torch.arange(len(self.x))
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            yield self.x[idx], self.y[idx], idx


def train_epoch(student: nn.Module, batches: Iterable, teacher_fn: TeacherFn, cfg: Config,
                optimizer: torch.optim.Optimizer, epoch: int, device: torch.device) -> dict[str, float]:
    """One epoch of ``cfg.method``; returns the mean loss and the training accuracy."""
    for group in optimizer.param_groups:
        group["lr"] = learning_rate(cfg, epoch)
    student.train()
    total_loss, correct, seen = 0.0, 0, 0
    for step, (x, y, idx) in enumerate(batches):
        if cfg.max_steps_per_epoch and step >= cfg.max_steps_per_epoch:
            break
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with torch.no_grad():
            teacher_logits = teacher_fn(x, idx)
        logits = student(x)
        loss = objective(cfg, logits, teacher_logits, y, epoch)
        where = f"{step + 1} of epoch {epoch}"
        guard_finite(where, **{f"{cfg.method} loss": loss})
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = nn.utils.clip_grad_norm_(student.parameters(), cfg.grad_clip if cfg.grad_clip > 0 else math.inf)
        guard_finite(where, grad_norm=grad_norm)
        optimizer.step()
        total_loss += loss.item() * len(y)
        correct += (logits.argmax(1) == y).sum().item()
        seen += len(y)
    return {"loss": total_loss / max(seen, 1), "train_acc": correct / max(seen, 1), "lr": learning_rate(cfg, epoch)}


@torch.no_grad()
def predict(model: nn.Module, batches: Iterable, device: torch.device, max_steps: int = 0,
            desc: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and labels of a whole split (eval mode); a progress bar named ``desc`` if given (and a TTY)."""
    model.eval()
    all_logits, all_labels = [], []
    total = min(len(batches), max_steps) if max_steps and hasattr(batches, "__len__") else (
        len(batches) if hasattr(batches, "__len__") else None)
    for step, batch in enumerate(progress(batches, total=total, desc=desc, quiet=desc is None, leave=False)):
        if max_steps and step >= max_steps:
            break
        x, y = batch[0], batch[1]
        all_logits.append(model(x.to(device)).float().cpu())
        all_labels.append(y)
    return torch.cat(all_logits), torch.cat(all_labels)


def evaluate(model: nn.Module, batches: Iterable, device: torch.device, max_steps: int = 0) -> float:
    """Top-1 accuracy (a fraction) on ``batches``."""
    logits, labels = predict(model, batches, device, max_steps)
    return (logits.argmax(1) == labels).float().mean().item()


def make_optimizer(cfg: Config, model: nn.Module, lr: float | None = None) -> torch.optim.SGD:
    """SGD with momentum and weight decay (official ``SOLVER.TYPE = SGD``)."""
    return torch.optim.SGD(model.parameters(), lr=cfg.lr if lr is None else lr, momentum=cfg.momentum,
                           weight_decay=cfg.weight_decay)
