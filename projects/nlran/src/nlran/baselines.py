"""The baselines NL-RAN is compared with in the paper: a 3-D ResNet, CBAM (in 3-D) and COVNet.

* :func:`resnet3d` -- a basic-block 3-D ResNet (:class:`ResNet3d`, He et al. 2016), the "ResNet" baseline;
* :func:`cbam_resnet3d` -- the same basic-block ResNet with a CBAM module (Woo et al., ECCV 2018, Eqs. 1-4:
  channel attention from avg- and max-pooled descriptors through a shared MLP, then spatial attention
  from a 7x7x7 conv over the channel-pooled maps) in every block before the residual addition;
* :class:`COVNet` -- COVNet (Li et al., Radiology 2020): a 2-D ResNet applied to every axial slice with
  shared weights, the slice features max-pooled over slices, then a fully connected layer. The 2-D ResNet
  is MONAI's (small, from scratch; the original is an ImageNet ResNet-50).

Every model maps (B, 1, D, H, W) to (B, 3) logits and names its last feature layer and classifier so
that MONAI's CAM / Grad-CAM can use them (``layer4``/``fc``, ``final``/``fc``).
"""

from __future__ import annotations

import torch
from torch import nn


def resnet3d(widths: tuple[int, int, int, int] = (64, 128, 256, 512), layers: tuple[int, int, int, int] = (2, 2, 2, 2),
             num_classes: int = 3, in_channels: int = 1, conv1_stride: int = 2, max_pool: bool = True,
             stage_strides: tuple[int, int, int] = (2, 2, 2), stem_width: int | None = None) -> ResNet3d:
    """The "ResNet" baseline: a basic-block 3-D ResNet (He et al. 2016; ``layers = (2, 2, 2, 2)`` is ResNet-18).

    ``conv1_stride``, ``max_pool`` and ``stage_strides`` set the downsampling (ResNet: 2, a max-pool and
    2, 2, 2); the matched CPU comparison gives it NL-RAN's stem and stage resolutions (README)."""
    return ResNet3d(widths, layers, num_classes, in_channels, conv1_stride=conv1_stride, max_pool=max_pool,
                    stage_strides=stage_strides, stem_width=stem_width, use_cbam=False)


class CBAM3d(nn.Module):
    """Convolutional Block Attention Module in 3-D (Woo et al. 2018, Eqs. 1-4).

    ``F' = M_c(F) * F`` with ``M_c = sigmoid(MLP(AvgPool(F)) + MLP(MaxPool(F)))`` and
    ``F'' = M_s(F') * F'`` with ``M_s = sigmoid(conv7([AvgPool_c(F'); MaxPool_c(F')]))``.
    """

    def __init__(self, channels: int, reduction: int = 16, kernel_size: int = 7):
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.mlp = nn.Sequential(nn.Conv3d(channels, hidden, 1), nn.ReLU(inplace=True), nn.Conv3d(hidden, channels, 1))
        self.spatial = nn.Conv3d(2, 1, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channel = torch.sigmoid(self.mlp(x.mean((2, 3, 4), keepdim=True)) + self.mlp(x.amax((2, 3, 4), keepdim=True)))
        x = channel * x
        pooled = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], dim=1)
        return torch.sigmoid(self.spatial(pooled)) * x


class BasicBlock3d(nn.Module):
    """A basic residual block (two 3x3x3 convs, He et al. 2016), with CBAM on the residual branch before the
    addition when ``use_cbam`` (CBAM paper Fig. 3)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, reduction: int = 16,
                 use_cbam: bool = False):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv3d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm3d(out_channels), nn.ReLU(inplace=True),
            nn.Conv3d(out_channels, out_channels, 3, padding=1, bias=False), nn.BatchNorm3d(out_channels),
        )
        self.cbam = CBAM3d(out_channels, reduction) if use_cbam else nn.Identity()
        self.shortcut = (nn.Sequential(nn.Conv3d(in_channels, out_channels, 1, stride=stride, bias=False),
                                       nn.BatchNorm3d(out_channels))
                         if stride != 1 or in_channels != out_channels else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.cbam(self.body(x)) + self.shortcut(x))


class ResNet3d(nn.Module):
    """A basic-block 3-D ResNet, optionally with CBAM in every block (the "ResNet" and "CBAM" baselines).

    Stem: ``conv3x3x3(stride conv1_stride) - BN - ReLU - [maxpool 3/2]`` -- the same stem as NL-RAN's, so the
    two can share its stride, pool and width (``stem_width``, default ``widths[0]``). Stage 1 keeps the
    stem's resolution; stages 2-4 start with ``stage_strides``. Init as ResNet (He et al. 2015:
    ``kaiming_normal_(fan_out)`` convs, BN 1 / 0). ``layer4``/``fc`` are the CAM / Grad-CAM layers."""

    def __init__(self, widths: tuple[int, int, int, int] = (64, 128, 256, 512),
                 layers: tuple[int, int, int, int] = (2, 2, 2, 2), num_classes: int = 3, in_channels: int = 1,
                 reduction: int = 16, conv1_stride: int = 2, max_pool: bool = True,
                 stage_strides: tuple[int, int, int] = (2, 2, 2), stem_width: int | None = None,
                 use_cbam: bool = True):
        super().__init__()
        if len(widths) != 4 or len(layers) != 4 or len(stage_strides) != 3:
            raise ValueError(f"ResNet3d needs 4 widths, 4 layer counts and 3 stage strides, got {widths}, "
                             f"{layers}, {stage_strides}")
        stem_width = stem_width or widths[0]
        self.stem = nn.Sequential(nn.Conv3d(in_channels, stem_width, 3, stride=conv1_stride, padding=1, bias=False),
                                  nn.BatchNorm3d(stem_width), nn.ReLU(inplace=True),
                                  nn.MaxPool3d(3, 2, 1) if max_pool else nn.Identity())
        stages, prev = [], stem_width
        for width, n, stride in zip(widths, layers, (1, *stage_strides)):
            blocks = [BasicBlock3d(prev if j == 0 else width, width, stride=stride if j == 0 else 1,
                                   reduction=reduction, use_cbam=use_cbam) for j in range(n)]
            stages.append(nn.Sequential(*blocks))
            prev = width
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.fc = nn.Linear(widths[-1], num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last feature map (the output of ``layer4``), from which CAM / Grad-CAM are computed."""
        if x.ndim != 5:
            raise ValueError(f"ResNet3d expects a (B, C, D, H, W) volume batch, got shape {tuple(x.shape)}")
        return self.layer4(self.layer3(self.layer2(self.layer1(self.stem(x)))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.features(x)).flatten(1))


def cbam_resnet3d(widths: tuple[int, int, int, int] = (64, 128, 256, 512),
                  layers: tuple[int, int, int, int] = (2, 2, 2, 2), num_classes: int = 3, in_channels: int = 1,
                  conv1_stride: int = 2, max_pool: bool = True, stage_strides: tuple[int, int, int] = (2, 2, 2),
                  stem_width: int | None = None, reduction: int = 16) -> ResNet3d:
    """The "CBAM" baseline: :class:`ResNet3d` with a CBAM module (reduction 16, 7x7x7) in every block."""
    return ResNet3d(widths, layers, num_classes, in_channels, reduction=reduction, conv1_stride=conv1_stride,
                    max_pool=max_pool, stage_strides=stage_strides, stem_width=stem_width, use_cbam=True)


class COVNet(nn.Module):
    """COVNet (Li et al. 2020): a shared 2-D ResNet on every axial slice, max-pooling over slices, FC.

    The slice features are taken after the 2-D ResNet's global average pool (MONAI ``feed_forward=False``),
    so the max over slices is the paper's "max pooling" of slice features.
    """

    def __init__(self, widths: tuple[int, int, int, int] = (64, 128, 256, 512),
                 layers: tuple[int, int, int, int] = (3, 4, 6, 3), num_classes: int = 3, in_channels: int = 1,
                 conv1_stride: int = 2, max_pool: bool = True):
        super().__init__()
        from monai.networks.nets import ResNet  # imported here: MONAI takes seconds to import

        self.backbone = ResNet(block="basic", layers=list(layers), block_inplanes=list(widths), spatial_dims=2,
                               n_input_channels=in_channels, conv1_t_size=3, conv1_t_stride=conv1_stride,
                               no_max_pool=not max_pool, feed_forward=False)
        self.fc = nn.Linear(widths[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5:
            raise ValueError(f"COVNet expects a (B, C, D, H, W) volume batch, got shape {tuple(x.shape)}")
        b, c, d, h, w = x.shape
        slices = x.permute(0, 2, 1, 3, 4).reshape(b * d, c, h, w)
        feats = self.backbone(slices).reshape(b, d, -1)
        return self.fc(feats.amax(dim=1))
