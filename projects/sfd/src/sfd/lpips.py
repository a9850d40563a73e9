"""LPIPS (Zhang et al. 2018) with the VGG-16 backbone, for the 1-NFE second stage of SFD.

LPIPS(x, y) = Σ_l mean_{h,w} ‖w_l ⊙ (f̂_l(x) − f̂_l(y))‖², f̂_l the channel-normalised VGG-16 activations after
relu1_2, relu2_2, relu3_3, relu4_3, relu5_3, w_l learned non-negative channel weights. Inputs in [−1, 1] are
shifted/scaled as in the reference implementation and (as the official SFD code does) upsampled to 224×224.
Weights are read from local files only: the torchvision VGG-16 state dict (``vgg16-397923af.pth``) and the
LPIPS linear layers (``lpips`` package ``weights/v0.1/vgg.pth``), both in one folder.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

CUTS = (4, 9, 16, 23, 30)  # torchvision vgg16.features indices after relu1_2 … relu5_3
CHANNELS = (64, 128, 256, 512, 512)


class LPIPS(nn.Module):
    def __init__(self, resize: int | None = 224):
        super().__init__()
        from torchvision.models import vgg16

        self.features = vgg16(weights=None).features[: CUTS[-1]].eval()
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in CHANNELS)
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).reshape(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).reshape(1, 3, 1, 1))
        self.resize = resize
        self.requires_grad_(False)

    @classmethod
    def from_files(cls, folder: str | Path) -> LPIPS:
        folder = Path(folder)
        vgg, lin = folder / "vgg16-397923af.pth", folder / "vgg.pth"
        if not (vgg.is_file() and lin.is_file()):
            raise FileNotFoundError(
                f"LPIPS weights not found in '{folder}': expected vgg16-397923af.pth (torchvision VGG-16) and "
                "vgg.pth (the lpips package's v0.1 linear layers). Nothing is downloaded.")
        model = cls()
        state = torch.load(vgg, map_location="cpu", weights_only=True)
        model.features.load_state_dict({k[len("features."):]: v for k, v in state.items()
                                        if k.startswith("features.") and int(k.split(".")[1]) < CUTS[-1]})
        lin_state = torch.load(lin, map_location="cpu", weights_only=True)
        for i, conv in enumerate(model.lins):
            conv.weight.data.copy_(lin_state[f"lin{i}.model.1.weight"])
        return model

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Sum over the batch of LPIPS distances (the SFD loss is summed and divided by B by the caller's
        convention; here we return the batch mean so it adds to the per-sample L1 on the same scale)."""
        if x.shape[1] == 1:
            x, y = x.expand(-1, 3, -1, -1), y.expand(-1, 3, -1, -1)
        if self.resize is not None:
            x = F.interpolate(x, size=self.resize, mode="bilinear", align_corners=False)
            y = F.interpolate(y, size=self.resize, mode="bilinear", align_corners=False)
        hx, hy = (x - self.shift) / self.scale, (y - self.shift) / self.scale
        total, start = 0.0, 0
        for cut, lin in zip(CUTS, self.lins):
            for layer in self.features[start:cut]:
                hx, hy = layer(hx), layer(hy)
            start = cut
            nx = hx / (hx.square().sum(1, keepdim=True).sqrt() + 1e-10)
            ny = hy / (hy.square().sum(1, keepdim=True).sqrt() + 1e-10)
            total = total + lin((nx - ny).square()).mean(dim=(1, 2, 3))
        return total.mean()
