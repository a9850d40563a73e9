"""Heat maps (attention soft mask, CAM, Grad-CAM) and their localisation against true lesion masks.

* :func:`attention_heatmap` -- the paper's heat map: the soft mask ``M`` of the first attention module,
  averaged over channels and upsampled (trilinear) to the input volume;
* :func:`cam_heatmap`, :func:`gradcam_heatmap` -- CAM (Zhou et al. 2016) and Grad-CAM (Selvaraju et al.
  2017) from ``monai.visualize``, for the predicted class, upsampled to the input;
* :func:`pointing_game`, :func:`voxel_auc`, :func:`topk_iou` -- localisation scores against the phantom's
  lesion mask, which the paper (real CT without lesion masks) could only judge by eye:

  - pointing game: the heat map's arg-max voxel lies inside the lesion mask (1) or not (0); ties count
    as the fraction of tied voxels inside the mask (a constant map scores chance);
  - voxel AUC: ROC-AUC of the heat values as a lesion/non-lesion voxel classifier over the whole volume;
  - top-k IoU: IoU between the lesion mask and the ``k`` hottest voxels, ``k`` = the lesion's voxel count.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from monai.visualize import CAM, GradCAM
from shared.metrics import roc_auc
from torch import nn

from nlran.model import NLRAN


def cam_layers(model: nn.Module) -> tuple[str, str] | None:
    """``(target_layer, fc_layer)`` for CAM / Grad-CAM on a 3-D model, ``None`` for slice-wise COVNet."""
    if isinstance(model, NLRAN):
        return "final", "fc"
    if hasattr(model, "layer4") and hasattr(model, "fc"):  # MONAI ResNet, CBAMResNet3d
        return "layer4", "fc"
    return None


@torch.no_grad()
def attention_heatmap(model: NLRAN, x: torch.Tensor, module: int = 0) -> torch.Tensor:
    """Channel-mean of attention module ``module``'s soft mask, upsampled to ``x``: (B, D, H, W) in (0, 1)."""
    model.eval()
    _, masks = model(x, return_attention=True)
    if not masks:
        raise ValueError("this NL-RAN has no attention modules (arch nlran_no_attention); no attention heat map")
    heat = masks[module].mean(dim=1, keepdim=True)
    return F.interpolate(heat, size=x.shape[2:], mode="trilinear", align_corners=False)[:, 0]


def cam_heatmap(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """MONAI CAM of the predicted class, min-max normalised per volume: (B, D, H, W)."""
    layers = cam_layers(model)
    if layers is None:
        raise ValueError(f"CAM needs a 3-D feature layer and an fc layer; {type(model).__name__} has none")
    model.eval()
    with torch.no_grad():
        return CAM(nn_module=model, target_layers=layers[0], fc_layers=layers[1])(x)[:, 0]


def gradcam_heatmap(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """MONAI Grad-CAM of the predicted class at the last feature layer, normalised per volume: (B, D, H, W)."""
    layers = cam_layers(model)
    if layers is None:
        raise ValueError(f"Grad-CAM needs a 3-D feature layer; {type(model).__name__} has none")
    model.eval()
    return GradCAM(nn_module=model, target_layers=layers[0])(x).detach()[:, 0]


def _check(heat: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    heat, mask = np.asarray(heat, dtype=np.float64), np.asarray(mask).astype(bool)
    if heat.shape != mask.shape:
        raise ValueError(f"heat map shape {heat.shape} differs from lesion mask shape {mask.shape}")
    if not mask.any():
        raise ValueError("the lesion mask is empty; localisation is defined only for volumes with lesions")
    return heat, mask


def pointing_game(heat: np.ndarray, mask: np.ndarray) -> float:
    """1.0 when the arg-max voxel of ``heat`` lies inside ``mask``, else 0.0.

    Ties are broken at random in expectation: the score is the fraction of maximal voxels inside the
    mask, so a constant map scores the lesion's volume fraction (chance), not a hit.
    """
    heat, mask = _check(heat, mask)
    return float(mask[heat == heat.max()].mean())


def voxel_auc(heat: np.ndarray, mask: np.ndarray) -> float:
    """ROC-AUC of heat values separating lesion from non-lesion voxels (0.5 = uninformative)."""
    heat, mask = _check(heat, mask)
    if mask.all():
        raise ValueError("the lesion mask covers the whole volume; voxel AUC needs non-lesion voxels")
    return roc_auc(mask.ravel().astype(np.int64), heat.ravel())


def topk_iou(heat: np.ndarray, mask: np.ndarray) -> float:
    """IoU of ``mask`` with the ``k = mask.sum()`` hottest voxels of ``heat``."""
    heat, mask = _check(heat, mask)
    k = int(mask.sum())
    top = np.zeros(mask.size, bool)
    top[np.argpartition(-heat.ravel(), k - 1)[:k]] = True
    top = top.reshape(mask.shape)
    return float((top & mask).sum() / (top | mask).sum())


def localisation_scores(heats: np.ndarray, masks: np.ndarray) -> dict[str, float]:
    """Mean pointing game, voxel AUC and top-k IoU over the volumes of ``heats`` whose mask is not empty."""
    keep = [i for i in range(len(masks)) if np.asarray(masks[i]).any()]
    if not keep:
        raise ValueError("no volume with a lesion; localisation scores need COVID-19 or CP volumes")
    return {"pointing_game": float(np.mean([pointing_game(heats[i], masks[i]) for i in keep])),
            "voxel_auc": float(np.mean([voxel_auc(heats[i], masks[i]) for i in keep])),
            "topk_iou": float(np.mean([topk_iou(heats[i], masks[i]) for i in keep])),
            "n_volumes": len(keep)}


def heatmaps_for(model: nn.Module, volumes: torch.Tensor, batch_size: int = 8) -> dict[str, np.ndarray]:
    """Every heat map the model supports for ``volumes`` (N, 1, D, H, W): name -> (N, D, H, W) numpy."""
    out: dict[str, list[torch.Tensor]] = {}
    for start in range(0, len(volumes), batch_size):
        x = volumes[start:start + batch_size]
        if isinstance(model, NLRAN) and model.attention1.mask is not None:
            out.setdefault("attention", []).append(attention_heatmap(model, x))
        if cam_layers(model) is not None:
            out.setdefault("cam", []).append(cam_heatmap(model, x))
            out.setdefault("gradcam", []).append(gradcam_heatmap(model, x))
    return {k: torch.cat(v).cpu().numpy() for k, v in out.items()}
