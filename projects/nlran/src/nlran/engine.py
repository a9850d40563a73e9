"""Building the configured model, predicting, the paper's classification metrics and inference latency."""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from nlran.baselines import COVNet, cbam_resnet3d, resnet3d
from nlran.config import Config
from nlran.model import NLRAN
from shared.metrics import accuracy, confusion_matrix, precision_recall_f1, roc_auc

NUM_CLASSES = 3


def build_model(cfg: Config) -> nn.Module:
    """The network named by ``cfg.arch`` (NL-RAN, an ablation of it, or a baseline)."""
    if cfg.arch.startswith("nlran"):
        return NLRAN(in_channels=1, num_classes=NUM_CLASSES, widths=tuple(cfg.widths), stem_stride=cfg.stem_stride,
                     stem_pool=cfg.stem_pool, p=cfg.p, t=cfg.t, r=cfg.r,
                     use_attention=cfg.arch != "nlran_no_attention", use_nonlocal=cfg.arch != "nlran_no_nonlocal",
                     nonlocal_sub_sample=cfg.nonlocal_sub_sample, nonlocal_scale=cfg.nonlocal_scale,
                     dropout=cfg.dropout, expansion=cfg.expansion,
                     final_units=cfg.final_units, stage_strides=tuple(cfg.stage_strides),
                     zero_init_residual=cfg.zero_init_residual)
    widths, layers = tuple(cfg.baseline_widths), tuple(cfg.baseline_layers)
    stem = {"conv1_stride": cfg.baseline_conv1_stride, "max_pool": cfg.baseline_max_pool}
    layout = {"stage_strides": tuple(cfg.baseline_stage_strides), "stem_width": cfg.baseline_stem_width or None}
    if cfg.arch == "resnet3d":
        return resnet3d(widths, layers, NUM_CLASSES, **stem, **layout)
    if cfg.arch == "cbam3d":
        return cbam_resnet3d(widths, layers, NUM_CLASSES, **stem, **layout)
    if cfg.arch == "covnet":
        return COVNet(widths, layers, NUM_CLASSES, **stem)
    raise ValueError(f"unknown arch {cfg.arch!r}")


@torch.no_grad()
def predict(model: nn.Module, dataset: Dataset, device: torch.device, batch_size: int = 8
            ) -> tuple[np.ndarray, np.ndarray]:
    """Softmax probabilities (N, 3) and labels (N,) of ``dataset`` in order."""
    model.eval()
    probs, labels = [], []
    for x, y in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        probs.append(torch.softmax(model(x.to(device)), dim=1).cpu())
        labels.append(y)
    return torch.cat(probs).numpy(), torch.cat(labels).numpy()


def classification_metrics(labels: np.ndarray, probs: np.ndarray) -> dict:
    """The paper's metrics (AUC, precision, F1) with both averagings, plus accuracy and the confusion matrix.

    AUC is one-vs-rest over the softmax probabilities; precision / recall / F1 use the arg-max prediction.
    A split lacking a class gets ``auc_macro = nan`` (a one-vs-rest AUC is undefined there).
    """
    pred = probs.argmax(1)
    macro = precision_recall_f1(labels, pred, average="macro")
    weighted = precision_recall_f1(labels, pred, average="weighted")
    if np.unique(labels).size == probs.shape[1]:
        auc_macro, auc_weighted = roc_auc(labels, probs, average="macro"), roc_auc(labels, probs, average="weighted")
    else:
        auc_macro = auc_weighted = float("nan")
    return {"accuracy": accuracy(labels, pred), "auc_macro": auc_macro, "auc_weighted": auc_weighted,
            "precision_macro": macro["precision"], "recall_macro": macro["recall"], "f1_macro": macro["f1"],
            "precision_weighted": weighted["precision"], "f1_weighted": weighted["f1"],
            "confusion_matrix": confusion_matrix(labels, pred, NUM_CLASSES).tolist(), "n": int(len(labels))}


@torch.no_grad()
def latency_per_volume(model: nn.Module, volume_shape: tuple[int, ...], device: torch.device, runs: int = 20,
                       warmup: int = 3) -> dict[str, float]:
    """Median / mean wall time (ms) of one forward pass on a single (1, 1, D, H, W) volume."""
    model.eval()
    x = torch.zeros(1, 1, *volume_shape, device=device)
    times = []
    for i in range(warmup + runs):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        model(x)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i >= warmup:
            times.append((time.perf_counter() - start) * 1000)
    return {"median_ms": float(np.median(times)), "mean_ms": float(np.mean(times)), "runs": runs}


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def flops_per_volume(model: nn.Module, volume_shape: tuple[int, ...]) -> float:
    """Multiply-accumulates of one forward pass on a (1, 1, D, H, W) volume, in GMAC (torch's FLOP counter,
    which counts convolutions, matrix products and attention; element-wise ops and pooling are not counted)."""
    from torch.utils.flop_counter import FlopCounterMode

    model.eval()
    device = next(model.parameters()).device
    with FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 1, *volume_shape, device=device))
    return counter.get_total_flops() / 2 / 1e9
