"""Heat maps (attention soft mask, CAM, Grad-CAM) and their localisation against true lesion masks.

* :func:`attention_heatmap` -- the paper's heat map: the soft mask ``M`` of the first attention module,
  averaged over channels and upsampled (trilinear) to the input volume;
* :func:`cam_heatmap` -- CAM (Zhou et al. 2016, Eq. 2 there): ``M_c = sum_k w_{c,k} A_k`` over the last
  feature map ``A`` (before global average pooling) with the classifier weights ``w_c``;
* :func:`gradcam_heatmap` -- Grad-CAM (Selvaraju et al. 2017, Eqs. 1-2): ``ReLU(sum_k alpha_k A_k)`` with
  ``alpha_k`` the spatial mean of ``d y_c / d A_k``.

CAM and Grad-CAM are computed for a given class per volume -- the TRUE class when labels are given (what
the paper's figures show: where the evidence for the diagnosis lies), else the predicted one -- then
upsampled trilinearly to the input and min-max normalised per volume. They are computed here directly
(vectorised over the batch) rather than with ``monai.visualize``: MONAI's ``class_score`` takes
``logits[:, class_idx]``, which for a batch with per-volume classes sums the scores of every volume's class.

Localisation scores against the phantom's lesion mask, which the paper (real CT without lesion masks) could
only judge by eye, are computed **inside a region** -- the lungs -- when one is given: lesions lie in the
lungs, and over the whole volume any map that is merely bright on the lungs (or dark on the air around the
body) separates lesion from non-lesion voxels (a plain lung mask scores a voxel AUC of ~0.94 there).

- pointing game: the map's arg-max voxel inside the region lies inside the lesion mask (1) or not (0); ties
  count as the fraction of tied voxels inside the mask (a constant map scores the lesion fraction: chance);
- voxel AUC: ROC-AUC of the heat values as a lesion / healthy-lung voxel classifier (0.5 = chance);
- top-k IoU: IoU between the lesion mask and the ``k`` hottest region voxels, ``k`` = the lesion's voxel count.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nlran.baselines import ResNet3d
from nlran.model import NLRAN
from shared.metrics import roc_auc


def has_cam(model: nn.Module) -> bool:
    """CAM / Grad-CAM need a 3-D last feature map followed by global average pooling and one linear layer."""
    return isinstance(model, (NLRAN, ResNet3d))


def features_and_logits(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The last feature map ``A`` (B, K, d, h, w) and the logits (B, classes) = ``fc(GAP(A))``."""
    if isinstance(model, NLRAN):
        feats, _ = model.features(x)
    elif isinstance(model, ResNet3d):
        feats = model.features(x)
    else:
        raise ValueError(f"CAM / Grad-CAM need a 3-D feature map and an fc layer; {type(model).__name__} has none")
    return feats, model.fc(model.pool(feats).flatten(1))


def _upsample_normalise(maps: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """(B, d, h, w) -> (B, D, H, W), trilinear, then min-max to [0, 1] per volume (a constant map -> 0)."""
    up = F.interpolate(maps[:, None], size=size, mode="trilinear", align_corners=False)[:, 0]
    flat = up.flatten(1)
    lo, hi = flat.min(1).values, flat.max(1).values
    return ((flat - lo[:, None]) / (hi - lo).clamp_min(1e-12)[:, None]).reshape(up.shape)


def _classes(logits: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    return logits.argmax(1) if labels is None else torch.as_tensor(labels, device=logits.device).long()


@torch.no_grad()
def attention_heatmap(model: NLRAN, x: torch.Tensor, module: int = 0) -> torch.Tensor:
    """Channel-mean of attention module ``module``'s soft mask, upsampled to ``x``: (B, D, H, W) in (0, 1)."""
    model.eval()
    _, masks = model(x, return_attention=True)
    if not masks:
        raise ValueError("this NL-RAN has no attention modules (arch nlran_no_attention); no attention heat map")
    heat = masks[module].mean(dim=1, keepdim=True)
    return F.interpolate(heat, size=x.shape[2:], mode="trilinear", align_corners=False)[:, 0]


@torch.no_grad()
def cam_heatmap(model: nn.Module, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
    """CAM of class ``labels`` (default: the predicted class) per volume, upsampled and normalised: (B, D, H, W)."""
    model.eval()
    feats, logits = features_and_logits(model, x)
    weights = model.fc.weight[_classes(logits, labels)]  # (B, K)
    return _upsample_normalise(torch.einsum("bk,bkdhw->bdhw", weights, feats), tuple(x.shape[2:]))


def gradcam_heatmap(model: nn.Module, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
    """Grad-CAM of class ``labels`` (default: predicted) per volume, upsampled and normalised: (B, D, H, W).

    In eval mode the volumes of a batch do not interact, so the gradient of the sum of every volume's own
    class score gives each volume its own ``d y_c / d A``."""
    model.eval()
    with torch.enable_grad():
        feats, logits = features_and_logits(model, x)
        score = logits.gather(1, _classes(logits, labels)[:, None]).sum()
        (grad,) = torch.autograd.grad(score, feats)
    alpha = grad.mean(dim=(2, 3, 4))  # (B, K), Grad-CAM Eq. 1
    maps = F.relu(torch.einsum("bk,bkdhw->bdhw", alpha, feats.detach()))  # Eq. 2
    return _upsample_normalise(maps, tuple(x.shape[2:]))


def _check(heat: np.ndarray, mask: np.ndarray, region: np.ndarray | None
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Heat values and lesion labels of the voxels in ``region`` (all voxels when ``None``), flattened."""
    heat, mask = np.asarray(heat, dtype=np.float64), np.asarray(mask).astype(bool)
    if heat.shape != mask.shape:
        raise ValueError(f"heat map shape {heat.shape} differs from lesion mask shape {mask.shape}")
    region = np.ones(mask.shape, bool) if region is None else np.asarray(region).astype(bool)
    if region.shape != mask.shape:
        raise ValueError(f"region shape {region.shape} differs from lesion mask shape {mask.shape}")
    if not (mask & region).any():
        raise ValueError("the lesion mask is empty inside the region; localisation is defined only for volumes "
                         "with lesions")
    return heat[region], mask[region], region


def pointing_game(heat: np.ndarray, mask: np.ndarray, region: np.ndarray | None = None) -> float:
    """1.0 when the arg-max voxel of ``heat`` (within ``region``, e.g. the lungs) lies inside ``mask``, else 0.0.

    Ties are broken at random in expectation: the score is the fraction of maximal voxels inside the
    mask, so a constant map scores the lesion's share of the region (chance), not a hit.
    """
    h, m, _ = _check(heat, mask, region)
    return float(m[h == h.max()].mean())


def voxel_auc(heat: np.ndarray, mask: np.ndarray, region: np.ndarray | None = None) -> float:
    """ROC-AUC of heat values separating lesion from non-lesion voxels within ``region`` (0.5 = uninformative).

    With ``region`` = the lung mask this is lesion vs healthy lung; lesion voxels outside the region are
    ignored (the phantom's lesions lie inside the lungs)."""
    h, m, _ = _check(heat, mask, region)
    if m.all():
        raise ValueError("the lesion mask covers the whole region; voxel AUC needs non-lesion voxels")
    return roc_auc(m.astype(np.int64), h)


def topk_iou(heat: np.ndarray, mask: np.ndarray, region: np.ndarray | None = None) -> float:
    """IoU of ``mask`` with the ``k = |mask in region|`` hottest voxels of ``heat`` within ``region``."""
    h, m, _ = _check(heat, mask, region)
    k = int(m.sum())
    top = np.zeros(m.size, bool)
    top[np.argpartition(-h, k - 1)[:k]] = True
    return float((top & m).sum() / (top | m).sum())


def chance_pointing(mask: np.ndarray, region: np.ndarray | None = None) -> float:
    """The pointing-game score of an uninformative map: the lesion's share of the region's voxels."""
    _, m, _ = _check(np.zeros(np.shape(mask)), mask, region)
    return float(m.mean())


def localisation_scores(heats: np.ndarray, masks: np.ndarray, regions: np.ndarray | None = None) -> dict[str, float]:
    """Mean pointing game, voxel AUC and top-k IoU over the volumes whose mask (within their region) is not
    empty; ``regions`` (N, D, H, W) restricts each volume's scoring (e.g. to its lungs)."""
    regions = [None] * len(masks) if regions is None else regions
    keep = [i for i in range(len(masks)) if (np.asarray(masks[i]).astype(bool)
                                             & (True if regions[i] is None else np.asarray(regions[i]))).any()]
    if not keep:
        raise ValueError("no volume with a lesion; localisation scores need COVID-19 or CP volumes")

    def mean(score) -> float:
        return float(np.mean([score(heats[i], masks[i], regions[i]) for i in keep]))

    return {"pointing_game": mean(pointing_game), "voxel_auc": mean(voxel_auc), "topk_iou": mean(topk_iou),
            "pointing_chance": float(np.mean([chance_pointing(masks[i], regions[i]) for i in keep])),
            "n_volumes": len(keep)}


def heatmaps_for(model: nn.Module, volumes: torch.Tensor, labels: torch.Tensor | None = None,
                 batch_size: int = 8) -> dict[str, np.ndarray]:
    """Every heat map the model supports for ``volumes`` (N, 1, D, H, W): name -> (N, D, H, W) numpy.

    CAM and Grad-CAM are taken for ``labels`` (the true classes) when given, else for the predicted class."""
    out: dict[str, list[torch.Tensor]] = {}
    for start in range(0, len(volumes), batch_size):
        x = volumes[start:start + batch_size]
        y = None if labels is None else labels[start:start + batch_size]
        if isinstance(model, NLRAN) and model.attention1.mask is not None:
            out.setdefault("attention", []).append(attention_heatmap(model, x))
        if has_cam(model):
            out.setdefault("cam", []).append(cam_heatmap(model, x, y))
            out.setdefault("gradcam", []).append(gradcam_heatmap(model, x, y))
    return {k: torch.cat(v).cpu().numpy() for k, v in out.items()}
