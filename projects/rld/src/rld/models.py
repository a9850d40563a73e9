"""The networks of the paper's teacher -> student pairs, plus the small MLPs of the offline default.

CIFAR-100 (32x32 inputs) architectures follow the definitions used by mdistiller / CRD (the official code
base, ``mdistiller/models/cifar``): ``resnet{8,14,20,32,44,56,110}`` and ``resnet{8,32}x4`` (basic-block
CIFAR ResNets), ``wrn_{16,40}_{1,2}`` (pre-activation wide ResNets), ``vgg{8,11,13}`` (VGG with BN),
``MobileNetV2`` (width 0.5, as mdistiller's ``mobile_half``), ``ShuffleV2`` and the CIFAR ``ResNet50``.
ImageNet: torchvision's ``resnet18/34/50`` and ``MobileNetV1``. Every model maps images to logits.

:func:`build_model` looks a name up in :data:`ARCHITECTURES` (a table of constructors, the same names as the
official configs' ``DISTILLER.TEACHER`` / ``STUDENT``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn


# ---------------------------------------------------------------------------------------------------
# offline default: MLPs on 8x8 digits
# ---------------------------------------------------------------------------------------------------
class MLP(nn.Module):
    """Flatten, then ``Linear -> ReLU`` for each hidden width, then a linear classifier."""

    def __init__(self, in_features: int = 64, hidden: tuple[int, ...] = (256, 256), num_classes: int = 10):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(inplace=True)]
            width = h
        layers.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


# ---------------------------------------------------------------------------------------------------
# CIFAR ResNets (He et al. 2016, CIFAR variant; mdistiller resnet.py)
# ---------------------------------------------------------------------------------------------------
class BasicBlock(nn.Module):
    def __init__(self, inplanes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class CifarResNet(nn.Module):
    """``depth = 6n + 2`` basic-block ResNet with three stages (strides 1, 2, 2) and an 8x8 average pool."""

    def __init__(self, depth: int, filters: tuple[int, int, int, int], num_classes: int = 100):
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n + 2, got {depth}")
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(3, filters[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(filters[0])
        inplanes = filters[0]
        # attribute names follow CRD/mdistiller ``resnet.py`` (conv1, bn1, layer1..3, fc, downsample) so that
        # the official teacher checkpoints can load (not verified against the released files: see README)
        for i, (planes, stride) in enumerate(zip(filters[1:], (1, 2, 2)), start=1):
            blocks = [BasicBlock(inplanes, planes, stride)] + [BasicBlock(planes, planes) for _ in range(n - 1)]
            setattr(self, f"layer{i}", nn.Sequential(*blocks))
            inplanes = planes
        self.fc = nn.Linear(inplanes, num_classes)
        _init_conv_bn(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


# ---------------------------------------------------------------------------------------------------
# Wide ResNets (Zagoruyko & Komodakis 2016; mdistiller wrn.py)
# ---------------------------------------------------------------------------------------------------
class PreActBlock(nn.Module):
    def __init__(self, inplanes: int, planes: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.shortcut = None if inplanes == planes else nn.Conv2d(inplanes, planes, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = F.relu(self.bn1(x))
        out = self.conv2(F.relu(self.bn2(self.conv1(pre))))
        return out + (x if self.shortcut is None else self.shortcut(pre))


class WideResNet(nn.Module):
    """WRN-``depth``-``widen``: ``depth = 6n + 4``, stage widths 16k, 32k, 64k."""

    def __init__(self, depth: int, widen: int, num_classes: int = 100):
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"WRN depth must be 6n + 4, got {depth}")
        n = (depth - 4) // 6
        widths = (16, 16 * widen, 32 * widen, 64 * widen)
        self.conv1 = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        stages, inplanes = [], widths[0]
        for planes, stride in zip(widths[1:], (1, 2, 2)):
            stages.append(nn.Sequential(*[PreActBlock(inplanes if i == 0 else planes, planes, stride if i == 0 else 1)
                                          for i in range(n)]))
            inplanes = planes
        self.layers = nn.Sequential(*stages)
        self.bn = nn.BatchNorm2d(inplanes)
        self.fc = nn.Linear(inplanes, num_classes)
        _init_conv_bn(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn(self.layers(self.conv1(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


# ---------------------------------------------------------------------------------------------------
# VGG with batch norm (Simonyan & Zisserman 2015; mdistiller vgg.py)
# ---------------------------------------------------------------------------------------------------
VGG_STAGES = {
    8: ((64,), (128,), (256,), (512,), (512,)),
    11: ((64,), (128,), (256, 256), (512, 512), (512, 512)),
    13: ((64, 64), (128, 128), (256, 256), (512, 512), (512, 512)),
}


class VGG(nn.Module):
    """Five conv-BN-ReLU stages separated by 2x2 max pools (the last by global average pooling)."""

    def __init__(self, depth: int, num_classes: int = 100):
        super().__init__()
        layers, inplanes = [], 3
        for i, stage in enumerate(VGG_STAGES[depth]):
            for planes in stage:
                layers += [nn.Conv2d(inplanes, planes, 3, padding=1), nn.BatchNorm2d(planes), nn.ReLU(inplace=True)]
                inplanes = planes
            layers.append(nn.MaxPool2d(2) if i < 4 else nn.Identity())
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(512, num_classes)
        _init_conv_bn(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))


# ---------------------------------------------------------------------------------------------------
# MobileNetV2 (Sandler et al. 2018), width 0.5 for CIFAR (mdistiller mobilenetv2.py ``mobile_half``)
# ---------------------------------------------------------------------------------------------------
class InvertedResidual(nn.Module):
    def __init__(self, inp: int, oup: int, stride: int, expand: int):
        super().__init__()
        hidden = inp * expand
        self.use_residual = stride == 1 and inp == oup
        self.conv = nn.Sequential(
            nn.Conv2d(inp, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, oup, 1, bias=False), nn.BatchNorm2d(oup),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_residual else self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNetV2 for 32x32 inputs: stride-1 stem, expansion ``t = 6``, width multiplier 0.5 by default."""

    SETTING = ((1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
               (6, 320, 1, 1))

    def __init__(self, width: float = 0.5, num_classes: int = 100):
        super().__init__()
        inp = int(32 * width)
        layers: list[nn.Module] = [nn.Conv2d(3, inp, 3, 1, 1, bias=False), nn.BatchNorm2d(inp), nn.ReLU(inplace=True)]
        for t, c, n, s in self.SETTING:
            out = int(c * width)
            for i in range(n):
                layers.append(InvertedResidual(inp, out, s if i == 0 else 1, t))
                inp = out
        last = 1280 if width <= 1.0 else int(1280 * width)
        layers += [nn.Conv2d(inp, last, 1, bias=False), nn.BatchNorm2d(last), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(last, num_classes)
        _init_conv_bn(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))


# ---------------------------------------------------------------------------------------------------
# ShuffleNetV2 (Ma et al. 2018), net size 1.0 for CIFAR (mdistiller ShuffleNetv2.py ``ShuffleV2``)
# ---------------------------------------------------------------------------------------------------
def channel_shuffle(x: torch.Tensor, groups: int = 2) -> torch.Tensor:
    b, c, h, w = x.shape
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


def _conv_bn(inp: int, oup: int, k: int, stride: int = 1, groups: int = 1, relu: bool = True) -> list[nn.Module]:
    layers = [nn.Conv2d(inp, oup, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(oup)]
    return layers + [nn.ReLU(inplace=True)] if relu else layers


class ShuffleBlock(nn.Module):
    """Stride-1 unit: split channels in half, transform one half, concatenate, shuffle."""

    def __init__(self, channels: int):
        super().__init__()
        c = channels // 2
        self.branch = nn.Sequential(*_conv_bn(c, c, 1), *_conv_bn(c, c, 3, groups=c, relu=False), *_conv_bn(c, c, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        left, right = x.chunk(2, dim=1)
        return channel_shuffle(torch.cat([left, self.branch(right)], dim=1))


class ShuffleDownBlock(nn.Module):
    """Stride-2 unit: both branches downsample, channels double."""

    def __init__(self, inp: int, oup: int):
        super().__init__()
        mid = oup // 2
        self.left = nn.Sequential(*_conv_bn(inp, inp, 3, 2, groups=inp, relu=False), *_conv_bn(inp, mid, 1))
        self.right = nn.Sequential(*_conv_bn(inp, mid, 1), *_conv_bn(mid, mid, 3, 2, groups=mid, relu=False),
                                   *_conv_bn(mid, mid, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return channel_shuffle(torch.cat([self.left(x), self.right(x)], dim=1))


class ShuffleNetV2(nn.Module):
    """ShuffleNetV2 1.0x for 32x32 inputs: stage widths (116, 232, 464), repeats (3, 7, 3), 1024-d head."""

    def __init__(self, widths: tuple[int, int, int, int] = (116, 232, 464, 1024), repeats=(3, 7, 3),
                 num_classes: int = 100):
        super().__init__()
        layers: list[nn.Module] = _conv_bn(3, 24, 3)
        inp = 24
        for width, n in zip(widths[:3], repeats):
            layers.append(ShuffleDownBlock(inp, width))
            layers += [ShuffleBlock(width) for _ in range(n)]
            inp = width
        layers += _conv_bn(inp, widths[3], 1)
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(widths[3], num_classes)
        _init_conv_bn(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))


# ---------------------------------------------------------------------------------------------------
# CIFAR ResNet50 (bottleneck, 3x3 stride-1 stem; mdistiller resnetv2.py)
# ---------------------------------------------------------------------------------------------------
class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1):
        super().__init__()
        out = planes * self.expansion
        self.body = nn.Sequential(*_conv_bn(inplanes, planes, 1), *_conv_bn(planes, planes, 3, stride),
                                  *_conv_bn(planes, out, 1, relu=False))
        self.shortcut = None
        if stride != 1 or inplanes != out:
            self.shortcut = nn.Sequential(nn.Conv2d(inplanes, out, 1, stride, bias=False), nn.BatchNorm2d(out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + (x if self.shortcut is None else self.shortcut(x)))


class CifarResNet50(nn.Module):
    def __init__(self, num_classes: int = 100, blocks=(3, 4, 6, 3)):
        super().__init__()
        layers: list[nn.Module] = _conv_bn(3, 64, 3)
        inplanes = 64
        for planes, n, stride in zip((64, 128, 256, 512), blocks, (1, 2, 2, 2)):
            for i in range(n):
                layers.append(Bottleneck(inplanes, planes, stride if i == 0 else 1))
                inplanes = planes * Bottleneck.expansion
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(inplanes, num_classes)
        _init_conv_bn(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))


# ---------------------------------------------------------------------------------------------------
# ImageNet: MobileNetV1 (Howard et al. 2017; mdistiller imagenet/mobilenetv1.py) and torchvision ResNets
# ---------------------------------------------------------------------------------------------------
class MobileNetV1(nn.Module):
    """MobileNetV1 1.0x for 224x224 inputs: a stride-2 stem and 13 depthwise-separable blocks."""

    SETTING = ((32, 64, 1), (64, 128, 2), (128, 128, 1), (128, 256, 2), (256, 256, 1), (256, 512, 2),
               (512, 512, 1), (512, 512, 1), (512, 512, 1), (512, 512, 1), (512, 512, 1), (512, 1024, 2),
               (1024, 1024, 1))

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        layers: list[nn.Module] = _conv_bn(3, 32, 3, 2)
        for inp, oup, stride in self.SETTING:
            layers += _conv_bn(inp, inp, 3, stride, groups=inp) + _conv_bn(inp, oup, 1)
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(1024, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))


def _torchvision(name: str) -> Callable[[int], nn.Module]:
    def make(num_classes: int = 1000) -> nn.Module:
        import torchvision

        return getattr(torchvision.models, name)(weights=None, num_classes=num_classes)

    make.__name__ = name
    return make


def _init_conv_bn(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


# ---------------------------------------------------------------------------------------------------
# the table of names used by the configs
# ---------------------------------------------------------------------------------------------------
ARCHITECTURES: dict[str, Callable[[int], nn.Module]] = {
    # offline default (8x8 digits): MLP teacher 64-256-256-10, MLP students
    "mlp_teacher": lambda num_classes=10: MLP(64, (256, 256), num_classes),
    "mlp_student": lambda num_classes=10: MLP(64, (32,), num_classes),
    "mlp_tiny": lambda num_classes=10: MLP(64, (8,), num_classes),
    # CIFAR-100
    **{f"resnet{d}": (lambda d: lambda num_classes=100: CifarResNet(d, (16, 16, 32, 64), num_classes))(d)
       for d in (8, 14, 20, 32, 44, 56, 110)},
    "resnet8x4": lambda num_classes=100: CifarResNet(8, (32, 64, 128, 256), num_classes),
    "resnet32x4": lambda num_classes=100: CifarResNet(32, (32, 64, 128, 256), num_classes),
    "wrn_16_1": lambda num_classes=100: WideResNet(16, 1, num_classes),
    "wrn_16_2": lambda num_classes=100: WideResNet(16, 2, num_classes),
    "wrn_40_1": lambda num_classes=100: WideResNet(40, 1, num_classes),
    "wrn_40_2": lambda num_classes=100: WideResNet(40, 2, num_classes),
    "vgg8": lambda num_classes=100: VGG(8, num_classes),
    "vgg11": lambda num_classes=100: VGG(11, num_classes),
    "vgg13": lambda num_classes=100: VGG(13, num_classes),
    "MobileNetV2": lambda num_classes=100: MobileNetV2(0.5, num_classes),
    "ShuffleV2": lambda num_classes=100: ShuffleNetV2(num_classes=num_classes),
    "ResNet50": lambda num_classes=100: CifarResNet50(num_classes),
    # ImageNet
    "ResNet18": _torchvision("resnet18"),
    "ResNet34": _torchvision("resnet34"),
    "ResNet50_imagenet": _torchvision("resnet50"),
    "MobileNetV1": lambda num_classes=1000: MobileNetV1(num_classes),
}


def build_model(name: str, num_classes: int) -> nn.Module:
    """The architecture ``name`` (see :data:`ARCHITECTURES`) with a ``num_classes``-way classifier."""
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {name!r}; expected one of {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[name](num_classes)
