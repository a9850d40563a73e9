"""Metrics shared by the paper projects (tested against hand-computed cases in shared/tests).

* classification: :func:`accuracy`, :func:`topk_accuracy`, :func:`roc_auc` (binary; one-vs-rest macro /
  weighted), :func:`precision_recall_f1`, :func:`confusion_matrix`, :func:`equal_error_rate`;
* localization: :func:`pixel_scores`, :func:`pixel_metrics` (official per-image protocol of DeFI-Net);
* images: :func:`mse`, :func:`psnr`, :func:`ssim` (optionally inside a mask);
* distributions: :func:`frechet_distance` (FID with Inception features supplied by the user),
  :func:`sliced_wasserstein`, :func:`mmd`.
"""

import importlib

# Imported on first use, so that importing ``shared.metrics`` does not load scikit-learn, scipy and scikit-image.
_WHERE = {
    "classification": ("accuracy", "confusion_matrix", "equal_error_rate", "precision_recall_f1", "roc_auc",
                       "topk_accuracy"),
    "distribution": ("frechet_distance", "frechet_distance_from_stats", "gaussian_stats", "mmd", "sliced_wasserstein"),
    "image": ("mse", "psnr", "ssim"),
    "pixel": ("minmax_normalize", "pixel_metrics", "pixel_scores"),
}
_MODULE_OF = {name: module for module, names in _WHERE.items() for name in names}


def __getattr__(name: str):
    if name in _MODULE_OF:
        value = getattr(importlib.import_module(f"shared.metrics.{_MODULE_OF[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'shared.metrics' has no attribute {name!r}")


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
