"""Metrics shared by the paper projects (tested against hand-computed cases in shared/tests).

* classification: :func:`accuracy`, :func:`topk_accuracy`, :func:`roc_auc` (binary; one-vs-rest macro /
  weighted), :func:`precision_recall_f1`, :func:`confusion_matrix`, :func:`equal_error_rate`;
* localization: :func:`pixel_scores`, :func:`pixel_metrics` (official per-image protocol of DeFI-Net);
* images: :func:`mse`, :func:`psnr`, :func:`ssim` (optionally inside a mask);
* distributions: :func:`frechet_distance` (FID with Inception features supplied by the user),
  :func:`sliced_wasserstein`, :func:`mmd`.
"""

from shared.metrics.classification import (
    accuracy,
    confusion_matrix,
    equal_error_rate,
    precision_recall_f1,
    roc_auc,
    topk_accuracy,
)
from shared.metrics.distribution import (
    frechet_distance,
    frechet_distance_from_stats,
    gaussian_stats,
    mmd,
    sliced_wasserstein,
)
from shared.metrics.image import mse, psnr, ssim
from shared.metrics.pixel import minmax_normalize, pixel_metrics, pixel_scores

__all__ = [
    "accuracy",
    "confusion_matrix",
    "equal_error_rate",
    "frechet_distance",
    "frechet_distance_from_stats",
    "gaussian_stats",
    "minmax_normalize",
    "mmd",
    "mse",
    "pixel_metrics",
    "pixel_scores",
    "precision_recall_f1",
    "psnr",
    "roc_auc",
    "sliced_wasserstein",
    "ssim",
    "topk_accuracy",
]
