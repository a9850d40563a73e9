"""Clean-test evaluation after 1 and 10 adaptation steps, and the builders shared by train.py and eval.py."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from hetrom.config import HetromConfig
from hetrom.data import FewShotTasks, GlyphClasses, MiniImageNetRoot, OmniglotRoot, SinusoidTasks, to_tensors
from hetrom.maml import adapted_predictions, cross_entropy_loss, mse_loss, parameters_of
from hetrom.model import ConvNet, SinusoidMLP
from shared.data.glyphs import GlyphAlphabet
from shared.data.sinusoid import SinusoidFamily
from shared.metrics import accuracy
from shared.runs import progress


def build_model(cfg: HetromConfig) -> nn.Module:
    if cfg.task == "sinusoid":
        return SinusoidMLP(cfg.hidden)
    channels = 3 if cfg.dataset == "miniimagenet" else 1
    return ConvNet(channels, cfg.n_way, cfg.filters, cfg.conv_blocks, cfg.image_size, cfg.downsample)


def loss_function(cfg: HetromConfig):
    return mse_loss if cfg.task == "sinusoid" else cross_entropy_loss


def build_tasks(cfg: HetromConfig, split: str, contaminated: bool):
    """The task sampler of ``split`` ('train' or 'test'); test tasks are never contaminated."""
    rates = dict(noisy_rate=cfg.noisy_rate, outlier_rate=cfg.outlier_rate) if contaminated else {}
    if cfg.task == "sinusoid":
        family = SinusoidFamily(noise_std=cfg.noise_std, easy_rate=cfg.easy_rate if contaminated else 0.0, **rates)
        return SinusoidTasks(family, cfg.n_support, cfg.n_query)
    if cfg.dataset == "glyphs":
        alphabet = GlyphAlphabet(cfg.glyph_classes, seed=0)
        first, count = (0, cfg.glyph_train_classes) if split == "train" else (
            cfg.glyph_train_classes, cfg.glyph_classes - cfg.glyph_train_classes)
        source = GlyphClasses(alphabet, first, count, cfg.image_size)
    elif cfg.dataset == "omniglot":
        source = OmniglotRoot(cfg.data_root).classes(split, cfg.image_size, rotations=cfg.rotations)
    else:
        source = MiniImageNetRoot(cfg.data_root).classes(split, cfg.image_size)
    return FewShotTasks(source, cfg.n_way, cfg.k_shot, cfg.k_query, label_noise=cfg.label_noise, **rates)


def test_tasks(cfg: HetromConfig, device: torch.device | str = "cpu", n_tasks: int | None = None):
    """The fixed clean test tasks (seeded by ``cfg.eval_seed``, independent of the training seed)."""
    sampler = build_tasks(cfg, "test", contaminated=False)
    return to_tensors(sampler.sample(np.random.default_rng(cfg.eval_seed), n_tasks or cfg.eval_tasks), device)


def evaluate(model: nn.Module, cfg: HetromConfig, tasks: dict[str, torch.Tensor], steps=None,
             chunk: int = 100, quiet: bool = False) -> dict[str, float]:
    """Clean-test metrics after each number of adaptation steps (``cfg.eval_steps`` by default).

    Sinusoid: MSE of the adapted prediction against the noise-free query targets (mean over tasks and its
    standard error). Few-shot: query accuracy and cross-entropy.
    """
    params = parameters_of(model)
    loss_fn = loss_function(cfg)
    out: dict[str, float] = {}
    n = len(tasks["x_support"])
    for s in steps if steps is not None else cfg.eval_steps:
        chunks = progress(range(0, n, chunk), desc=f"eval, {s} step(s)", quiet=quiet or n <= chunk)
        preds = torch.cat([adapted_predictions(model, params, {k: v[i:i + chunk] for k, v in tasks.items()},
                                               loss_fn, s, cfg.inner_lr) for i in chunks])
        if cfg.task == "sinusoid":
            per_task = ((preds - tasks["f_query"]) ** 2).mean(dim=(1, 2))
            out[f"mse_{s}"] = per_task.mean().item()
            out[f"mse_{s}_sem"] = (per_task.std() / n**0.5).item() if n > 1 else 0.0
        else:
            labels = tasks["y_query"]
            out[f"acc_{s}"] = accuracy(labels.flatten().cpu().numpy(), preds.argmax(-1).flatten().cpu().numpy())
            out[f"loss_{s}"] = torch.nn.functional.cross_entropy(preds.flatten(0, 1), labels.flatten()).item()
    return out


def headline_key(cfg: HetromConfig, steps: int) -> str:
    return f"{'mse' if cfg.task == 'sinusoid' else 'acc'}_{steps}"
