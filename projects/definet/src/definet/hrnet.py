"""HRNet backbone with the stride-1 stem of DeFI-Net (paper Sec. III-A; official ``model/backbone/hrnet.py``).

HRNet-W18-small-v2 (Wang et al., TPAMI 2020): a stem of two 3x3 convolutions, stage 1 of bottleneck blocks,
then stages 2-4 with 2, 3 and 4 parallel branches of basic blocks whose features are exchanged by the
multi-resolution fusion of every :class:`HighResolutionModule`. DeFI-Net sets both stem convolutions to
**stride 1**, so the four branch outputs lie at 1, 1/2, 1/4 and 1/8 of the input resolution (instead of
1/4 .. 1/32): inpainting traces are low-level and need full-resolution features.

Parameter names follow the official HRNet code (``conv1``, ``layer1``, ``transition1``, ``stage2.0.branches``,
``stage2.0.fuse_layers`` ...), so an ImageNet checkpoint ``hrnet_w18_small_v2.pth`` loads with
:func:`load_hrnet_pretrained` (the classification head's keys are ignored).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

BN_MOMENTUM = 0.01  # the official HRNet value


@dataclass(frozen=True)
class HRNetSpec:
    """Widths and depths of the backbone. Defaults: HRNet-W18-small-v2 (the paper's backbone)."""

    stem_channels: int = 64
    stage1_planes: int = 64  # bottleneck planes of stage 1 (output = 4 x planes)
    stage1_blocks: int = 2
    channels: tuple[int, int, int, int] = (18, 36, 72, 144)
    blocks: tuple[int, int, int, int] = (2, 2, 2, 2)  # basic blocks per branch in stages 2-4
    modules: tuple[int, int, int] = (1, 1, 1)  # HighResolutionModules in stages 2, 3, 4 (official hr_config.py)
    bn_momentum: float = BN_MOMENTUM  # running-statistics momentum of every backbone BatchNorm


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, momentum=BN_MOMENTUM)


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with a residual connection (ResNet basic block)."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, padding=1, bias=False)
        self.bn1 = _bn(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = _bn(planes)
        self.downsample = (nn.Sequential(nn.Conv2d(inplanes, planes, 1, bias=False), _bn(planes))
                           if inplanes != planes else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class Bottleneck(nn.Module):
    """1x1 -> 3x3 -> 1x1 (x4 expansion) residual block of stage 1."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int):
        super().__init__()
        out = planes * self.expansion
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = _bn(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = _bn(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = _bn(out)
        self.downsample = nn.Sequential(nn.Conv2d(inplanes, out, 1, bias=False), _bn(out)) if inplanes != out else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


def _down(cin: int, cout: int, relu: bool) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False), _bn(cout)]
    return nn.Sequential(*layers, nn.ReLU()) if relu else nn.Sequential(*layers)


class HighResolutionModule(nn.Module):
    """Parallel branches of basic blocks followed by multi-resolution fusion.

    Output branch ``i`` = ReLU(sum_j f_ij(x_j)) with f_ii = identity, f_ij for a coarser j a 1x1 conv-BN then
    bilinear upsampling (``align_corners=True``, as the official segmentation HRNet), and f_ij for a finer j
    a chain of stride-2 3x3 conv-BN(-ReLU) layers.
    """

    def __init__(self, channels: list[int], num_blocks: int):
        super().__init__()
        n = len(channels)
        self.branches = nn.ModuleList(
            nn.Sequential(*(BasicBlock(c, c) for _ in range(num_blocks))) for c in channels)
        fuse = []
        for i in range(n):
            row = []
            for j in range(n):
                if j > i:
                    row.append(nn.Sequential(nn.Conv2d(channels[j], channels[i], 1, bias=False), _bn(channels[i])))
                elif j == i:
                    row.append(nn.Identity())
                else:
                    steps = [_down(channels[j], channels[j], relu=True) for _ in range(i - j - 1)]
                    row.append(nn.Sequential(*steps, _down(channels[j], channels[i], relu=False)))
            fuse.append(nn.ModuleList(row))
        self.fuse_layers = nn.ModuleList(fuse) if n > 1 else None

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs)]
        if self.fuse_layers is None:
            return xs
        out = []
        for i, row in enumerate(self.fuse_layers):
            y = xs[i]
            for j, layer in enumerate(row):
                if j < i:
                    y = y + layer(xs[j])
                elif j > i:
                    y = y + F.interpolate(layer(xs[j]), size=xs[i].shape[-2:], mode="bilinear", align_corners=True)
            out.append(F.relu(y))
        return out


class HRNet(nn.Module):
    """HRNet with a stride-1 stem; ``forward`` returns the 4 branch features at strides 1, 2, 4, 8."""

    def __init__(self, spec: HRNetSpec = HRNetSpec()):
        super().__init__()
        self.spec = spec
        c, s = list(spec.channels), spec.stem_channels
        # stem: both 3x3 convolutions with stride 1 (DeFI-Net's change; stride 2 in the original HRNet)
        self.conv1 = nn.Conv2d(3, s, 3, stride=1, padding=1, bias=False)
        self.bn1 = _bn(s)
        self.conv2 = nn.Conv2d(s, s, 3, stride=1, padding=1, bias=False)
        self.bn2 = _bn(s)
        stage1_out = spec.stage1_planes * Bottleneck.expansion
        self.layer1 = nn.Sequential(
            Bottleneck(s, spec.stage1_planes),
            *(Bottleneck(stage1_out, spec.stage1_planes) for _ in range(spec.stage1_blocks - 1)))
        self.transition1 = nn.ModuleList([
            nn.Sequential(nn.Conv2d(stage1_out, c[0], 3, padding=1, bias=False), _bn(c[0]), nn.ReLU()),
            nn.Sequential(_down(stage1_out, c[1], relu=True))])
        self.stage2 = nn.Sequential(*(HighResolutionModule(c[:2], spec.blocks[1]) for _ in range(spec.modules[0])))
        self.transition2 = nn.ModuleList([nn.Identity(), nn.Identity(), nn.Sequential(_down(c[1], c[2], relu=True))])
        self.stage3 = nn.Sequential(*(HighResolutionModule(c[:3], spec.blocks[2]) for _ in range(spec.modules[1])))
        self.transition3 = nn.ModuleList([nn.Identity()] * 3 + [nn.Sequential(_down(c[2], c[3], relu=True))])
        self.stage4 = nn.Sequential(*(HighResolutionModule(c, spec.blocks[3]) for _ in range(spec.modules[2])))
        self.out_channels = tuple(c)
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.momentum = spec.bn_momentum

    def init_weights(self, scheme: str = "official") -> None:
        """``"official"``: the official HRNet ``init_weights`` (conv weights N(0, 0.001), BN weight 1 and bias
        0), which the paper overwrites with ImageNet weights. ``"kaiming"``: He-normal conv weights (fan-out,
        ReLU gain), for training from scratch. With N(0, 0.001) and no pretrained weights the pre-BN variance
        of deep layers falls far below BatchNorm's eps (1e-5), so BN cannot re-normalise and the features
        shrink by orders of magnitude block after block (measured: variance ~1e-10 after stage 1)."""
        if scheme not in ("official", "kaiming"):
            raise ValueError(f"unknown init scheme {scheme!r}; expected 'official' or 'kaiming'")
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                if scheme == "official":
                    nn.init.normal_(m.weight, std=0.001)
                else:
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        x = self.layer1(x)
        xs = self.stage2([t(x) for t in self.transition1])
        xs = self.stage3([self.transition2[i](xs[min(i, 1)]) for i in range(3)])
        return self.stage4([self.transition3[i](xs[min(i, 2)]) for i in range(4)])


def load_hrnet_pretrained(backbone: HRNet, path: str | Path) -> list[str]:
    """Load ImageNet weights (the official ``hrnet_w18_small_v2.pth``) into ``backbone``.

    Keys of the classification head (``incre_modules``, ``downsamp_modules``, ``final_layer``,
    ``classifier``) are ignored; a ``model.`` prefix is stripped. Returns the backbone keys that received no
    weight (empty for the matching checkpoint).

    Raises:
        FileNotFoundError: naming the weights needed and where they come from.
        ValueError: the file holds tensors of the wrong shape (a different HRNet width).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"HRNet ImageNet weights '{path}' not found. DeFI-Net starts from HRNet-W18-small-v2 ImageNet weights "
            "('hrnet_w18_small_v2.pth' of github.com/HRNet/HRNet-Image-Classification, or the Baidu link of the "
            "official DeFI-Net README); download it yourself and pass model.pretrained=PATH.")
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = state.get("state_dict", state)
    state = {k.removeprefix("model."): v for k, v in state.items()}
    own = backbone.state_dict()
    used = {k: v for k, v in state.items() if k in own}
    wrong = [k for k, v in used.items() if v.shape != own[k].shape]
    if wrong:
        raise ValueError(f"'{path}' does not match this HRNet (widths {backbone.spec.channels}); "
                         f"shape mismatch in {wrong[:5]}...")
    backbone.load_state_dict(used, strict=False)
    return sorted(set(own) - set(used))
