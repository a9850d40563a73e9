"""The meta-learners: the MAML sinusoid MLP and the MAML few-shot ConvNet (Finn et al., 2017, Sec. 5)."""

from __future__ import annotations

import torch
from torch import nn


class SinusoidMLP(nn.Module):
    """MLP 1-40-40-1 with ReLU, the MAML sinusoid regressor."""

    def __init__(self, hidden: int = 40, depth: int = 2):
        super().__init__()
        layers, width = [], 1
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != 1:
            raise ValueError(f"SinusoidMLP expects inputs of shape (..., 1), got {tuple(x.shape)}")
        return self.net(x)


def conv_block(in_channels: int, out_channels: int, downsample: str = "max") -> nn.Sequential:
    """3x3 conv -> batch norm (batch statistics, as in MAML's transductive setting) -> ReLU, halving the size
    with a 2x2 max-pool (``"max"``, MAML's mini-ImageNet net) or with a stride-2 conv (``"stride"``, MAML's
    Omniglot net: "we used strided convolutions instead of max-pooling", Finn et al. 2017, Sec. 5.2)."""
    if downsample not in ("max", "stride"):
        raise ValueError(f"downsample must be 'max' or 'stride', got {downsample!r}")
    stride = 2 if downsample == "stride" else 1
    layers = [nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1),
              nn.BatchNorm2d(out_channels, track_running_stats=False), nn.ReLU()]
    return nn.Sequential(*layers, *([nn.MaxPool2d(2)] if downsample == "max" else []))


class ConvNet(nn.Module):
    """Four conv blocks and a linear head (MAML's Omniglot / mini-ImageNet model; 64 / 32 filters there)."""

    def __init__(self, in_channels: int = 1, n_way: int = 5, hidden: int = 64, blocks: int = 4,
                 image_size: int = 28, downsample: str = "max"):
        super().__init__()
        chans = [in_channels] + [hidden] * blocks
        self.features = nn.Sequential(*(conv_block(a, b, downsample) for a, b in zip(chans[:-1], chans[1:])))
        side = image_size
        for _ in range(blocks):  # max-pool floors odd sizes, a stride-2 conv with padding 1 rounds them up
            side = side // 2 if downsample == "max" else (side + 1) // 2
        if side < 1:
            raise ValueError(f"image_size {image_size} is too small for {blocks} pooling blocks")
        self.in_channels, self.image_size = in_channels, image_size
        self.head = nn.Linear(hidden * side * side, n_way)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels or x.shape[-1] != self.image_size:
            raise ValueError(f"ConvNet expects images (B, {self.in_channels}, {self.image_size}, "
                             f"{self.image_size}), got {tuple(x.shape)}")
        return self.head(self.features(x).flatten(1))
