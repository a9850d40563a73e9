"""DeFI-Net (Yao et al., IEEE TIFS / arXiv 2408.02191) and the plain encoder-decoder baseline.

``DeFINet.forward(x) -> (edge_logits, seg_logits)``, both (N, 1, H, W) at the input resolution:

    x --HRNet (stride-1 stem)--> [x1 (1), x2 (1/2), x3 (1/4), x4 (1/8)]       Sec. III-A
         (or ImageNet EfficientNet-Lite0 at 1/2 .. 1/16, ``encoder="lite0"``: definet.encoders, a deviation)
      --DFPL (dense top-down + bottom-up pyramid, Eq. 1)--> [low1, low2, mid, high]   Sec. III-B
      --REAM(low1, low2, mid)--> (low_mid feature, edge logits)                 Sec. III-C
      --SAFF(low_mid, high)--> seg logits                                        Sec. III-D

The block structure, channel counts and operations follow the official code (``model/Network.py``,
``model/DFPL.py``, commit a2b0f57). Input sides must be multiples of 8 (the pyramid halves three times and
SAFF's transposed convolution upsamples x8); with the Lite0 encoder, multiples of 16 (its coarsest level is at
1/16 and the decoder output at 1/2 is upsampled x2). Other sizes raise a ``ValueError``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import torch
import torch.nn.functional as F
from torch import nn

from definet.hrnet import HRNet, HRNetSpec, load_hrnet_pretrained

if TYPE_CHECKING:
    from definet.encoders import Lite0Encoder


@dataclass
class ModelConfig:
    """Architecture. Defaults are the paper's (HRNet-W18-small-v2 stride-1 stem, 64-channel DFPL)."""

    arch: Literal["definet", "unet"] = "definet"
    stem_channels: int = 64
    stage1_planes: int = 64
    channels: tuple[int, int, int, int] = (18, 36, 72, 144)
    stage_modules: tuple[int, int, int] = (1, 1, 1)  # official hr_config.py (ImageNet W18-small-v2 has 1, 3, 2)
    fpn_out: int = 64
    use_ream: bool = True  # False: ablation without REAM (no edge branch, SAFF fuses DFPL's low1 directly)
    unet_widths: tuple[int, int, int, int] = (32, 64, 128, 256)  # baseline encoder widths
    pretrained: str | None = None  # path to hrnet_w18_small_v2.pth (ImageNet); None = random init
    hrnet_init: Literal["official", "kaiming"] = "official"  # random init of the backbone (before `pretrained`)
    hrnet_bn_momentum: float = 0.01  # official HRNet BN_MOMENTUM (tuned for ~60k steps)
    # encoder: "default" = the paper's HRNet for DeFI-Net and the U-Net's own conv encoder for the baseline;
    # "lite0" = ImageNet EfficientNet-Lite0 (definet.encoders; a deviation) under either decoder
    encoder: Literal["default", "lite0"] = "default"
    encoder_pretrained: bool = True  # lite0: ImageNet weights (False: same architecture, random init)
    encoder_bn_momentum: float = 0.1  # lite0: BatchNorm momentum (timm's TF port uses 0.01)
    unet_decoder_widths: tuple[int, int, int] = (32, 64, 128)  # U-Net decoder on the lite0 encoder, fine to coarse


def _upsample_to(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Bilinear x2 upsampling (``align_corners=False``) to ``ref``'s spatial size."""
    return F.interpolate(x, size=ref.shape[-2:], mode="bilinear", align_corners=False)


def _conv_bn_swish(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.SiLU())


class TopDownFusion(nn.Module):
    """DFPL top-down pass (Eq. 1, j = 1 and j = 2).

    j = 1: every backbone level is reduced to C channels by a 1x1 conv (r_i). j = 2, from the coarsest level
    down: level i concatenates the max-pooled finer level r_{i-1} (3x3, stride 2), its own r_i, the upsampled
    coarser level r_{i+1} and the upsampled *fused* coarser level t_{i+1}; a 1x1 conv maps that to C (t_i)
    and a 3x3 conv-BN-Swish gives the output. (Level 4 has no coarser and level 1 no finer neighbour.)
    """

    def __init__(self, in_channels: tuple[int, ...], c: int):
        super().__init__()
        self.reduce = nn.ModuleList(nn.Conv2d(ci, c, 1) for ci in in_channels)
        self.mix = nn.ModuleList([nn.Conv2d(3 * c, c, 1), nn.Conv2d(4 * c, c, 1), nn.Conv2d(4 * c, c, 1),
                                  nn.Conv2d(2 * c, c, 1)])  # levels 1..4
        self.blocks = nn.ModuleList(_conv_bn_swish(c, c) for _ in range(4))
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        r1, r2, r3, r4 = (conv(x) for conv, x in zip(self.reduce, xs))
        t4 = self.mix[3](torch.cat([self.pool(r3), r4], 1))
        t3 = self.mix[2](torch.cat([self.pool(r2), r3, _upsample_to(r4, r3), _upsample_to(t4, r3)], 1))
        t2 = self.mix[1](torch.cat([self.pool(r1), r2, _upsample_to(r3, r2), _upsample_to(t3, r2)], 1))
        t1 = self.mix[0](torch.cat([r1, _upsample_to(r2, r1), _upsample_to(t2, r1)], 1))
        return [block(t) for block, t in zip(self.blocks, (t1, t2, t3, t4))]


class BottomUpFusion(nn.Module):
    """DFPL bottom-up pass (Eq. 1, j = 3), symmetric to :class:`TopDownFusion`: from the finest level up,
    level i concatenates the max-pooled *fused* finer level u_{i-1}, the max-pooled finer input y_{i-1}, its
    own y_i and the upsampled coarser y_{i+1}; 1x1 conv to C (u_i), then 3x3 conv-BN-Swish."""

    def __init__(self, c: int):
        super().__init__()
        self.mix = nn.ModuleList([nn.Conv2d(2 * c, c, 1), nn.Conv2d(4 * c, c, 1), nn.Conv2d(4 * c, c, 1),
                                  nn.Conv2d(3 * c, c, 1)])
        self.blocks = nn.ModuleList(_conv_bn_swish(c, c) for _ in range(4))
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)

    def forward(self, ys: list[torch.Tensor]) -> list[torch.Tensor]:
        y1, y2, y3, y4 = ys
        u1 = self.mix[0](torch.cat([y1, _upsample_to(y2, y1)], 1))
        u2 = self.mix[1](torch.cat([self.pool(u1), self.pool(y1), y2, _upsample_to(y3, y2)], 1))
        u3 = self.mix[2](torch.cat([self.pool(u2), self.pool(y2), y3, _upsample_to(y4, y3)], 1))
        u4 = self.mix[3](torch.cat([self.pool(u3), self.pool(y3), y4], 1))
        return [block(u) for block, u in zip(self.blocks, (u1, u2, u3, u4))]


class DFPL(nn.Module):
    """Dense Feature Pyramid Learning (Sec. III-B): top-down then bottom-up dense fusion; each output level
    is concatenated with the original backbone feature and mapped by 1x1 conv -> 3x3 conv-BN-Swish to C."""

    def __init__(self, in_channels: tuple[int, ...] = (18, 36, 72, 144), out_channels: int = 64):
        super().__init__()
        self.top_down = TopDownFusion(in_channels, out_channels)
        self.bottom_up = BottomUpFusion(out_channels)
        self.out = nn.ModuleList(
            nn.Sequential(nn.Conv2d(ci + out_channels, out_channels, 1), _conv_bn_swish(out_channels, out_channels))
            for ci in in_channels)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        fused = self.bottom_up(self.top_down(xs))
        return [head(torch.cat([x, f], 1)) for head, x, f in zip(self.out, xs, fused)]


class SegmentHead(nn.Module):
    """BN-ReLU-3x3 conv (to ``mid``) then BN-ReLU-1x1 conv (to ``out``) -- REAM's edge head."""

    def __init__(self, cin: int, mid: int, out: int = 1):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(cin), nn.Conv2d(cin, mid, 3, padding=1, bias=False)
        self.bn2, self.conv2 = nn.BatchNorm2d(mid), nn.Conv2d(mid, out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.relu(self.bn2(self.conv1(F.relu(self.bn1(x))))))


class REAM(nn.Module):
    """Reverse Edge Attention (enhancement) Module (Sec. III-C).

    1. Fuse mid -> low2 -> low1: F = ReLU(up(BN(conv3(mid))) + BN(conv3(low2))), then
       F = ReLU(up(BN(conv3(F))) + BN(conv3(low1))).
    2. Reverse attention from the mid level: a = 1 - sigmoid(conv7x7([mean_c(mid), max_c(mid)])), upsampled
       to full resolution; it highlights what the semantic level does *not* respond to (region boundaries).
    3. edge = SegmentHead(F * a).  Returns ``(F, edge_logits)``; F (not F * a) feeds SAFF.
    """

    def __init__(self, c: int):
        super().__init__()
        self.attention = nn.Conv2d(2, 1, 7, padding=3, bias=False)
        self.mid = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c))
        self.low2 = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c))
        self.fuse = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c))
        self.low1 = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c))
        self.edge_head = SegmentHead(c, c, 1)

    def reverse_attention(self, mid: torch.Tensor) -> torch.Tensor:
        """a = 1 - sigmoid(conv7x7([mean over channels, max over channels])) at the mid resolution."""
        pooled = torch.cat([mid.mean(1, keepdim=True), mid.amax(1, keepdim=True)], 1)
        return 1 - torch.sigmoid(self.attention(pooled))

    def forward(self, low1: torch.Tensor, low2: torch.Tensor, mid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        fused = F.relu(_upsample_to(self.mid(mid), low2) + self.low2(low2))
        fused = F.relu(_upsample_to(self.fuse(fused), low1) + self.low1(low1))
        attention = _upsample_to(self.reverse_attention(mid), low1)
        return fused, self.edge_head(fused * attention)


class LocationAdaptiveLearner(nn.Module):
    """Three 1x1 conv-BN layers (ReLU between) giving per-pixel fusion weights (N, K, L, H, W) (DFF-style)."""

    def __init__(self, nclass: int, channels: int):
        super().__init__()
        self.nclass = nclass
        self.net = nn.Sequential(
            nn.Conv2d(channels, channels, 1), nn.BatchNorm2d(channels), nn.ReLU(),
            nn.Conv2d(channels, channels, 1), nn.BatchNorm2d(channels), nn.ReLU(),
            nn.Conv2d(channels, channels, 1), nn.BatchNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.net(x)
        return w.view(w.shape[0], self.nclass, -1, *w.shape[-2:])


class SAFF(nn.Module):
    """Spatial Adaptive Feature Fusion (Sec. III-D).

    The low-mid feature (full resolution) and the high feature (1/8) are each projected to K = 2 maps (1x1
    conv + BN; the high one upsampled x8 by a learned ConvTranspose2d(16, stride 8, padding 4)). A third
    projection of the high feature (K * L = 4 maps, upsampled x8) feeds the location-adaptive learner, which
    gives per-pixel weights w of shape (N, K, L=2, H, W). For each k the pair [high_k, lowmid_k] is weighted
    by w[:, k] and summed; a 1x1 conv maps the K fused maps to the segmentation logits.
    """

    def __init__(self, c: int, nclass: int = 2, layers: int = 2):
        super().__init__()
        self.nclass = nclass
        self.low_mid = nn.Sequential(nn.Conv2d(c, nclass, 1), nn.BatchNorm2d(nclass))
        self.high = nn.Sequential(nn.Conv2d(c, nclass, 1), nn.BatchNorm2d(nclass),
                                  nn.ConvTranspose2d(nclass, nclass, 16, stride=8, padding=4, bias=False))
        self.high_prior = nn.Sequential(nn.Conv2d(c, nclass * layers, 1), nn.BatchNorm2d(nclass * layers),
                                        nn.ConvTranspose2d(nclass * layers, nclass * layers, 16, stride=8,
                                                           padding=4, bias=False))
        self.learner = LocationAdaptiveLearner(nclass, nclass * layers)
        self.head = nn.Conv2d(nclass, 1, 1)

    def fusion_weights(self, high: torch.Tensor) -> torch.Tensor:
        """Per-pixel weights (N, K, L, 8h, 8w) from the high-level feature."""
        return self.learner(self.high_prior(high))

    def forward(self, low_mid: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        weights = self.fusion_weights(high)
        lm, hi = self.low_mid(low_mid), self.high(high)
        pairs = torch.stack([hi, lm], dim=2)  # (N, K, 2, H, W): [high_k, lowmid_k] for each k
        return self.head((pairs * weights).sum(2))


def check_input(x: torch.Tensor, multiple: int = 8) -> None:
    """Inputs are (N, 3, H, W) with H and W multiples of ``multiple`` (8 for the HRNet / plain U-Net models, 16
    with the Lite0 encoder); anything else is a clear error."""
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"expected an image batch of shape (N, 3, H, W), got {tuple(x.shape)}")
    if x.shape[-2] % multiple or x.shape[-1] % multiple:
        raise ValueError(f"input height and width must be multiples of {multiple} (got {tuple(x.shape[-2:])}): the "
                         f"pyramid's coarsest level is at 1/{multiple} and SAFF upsamples x8; resize or pad the image")


def build_encoder(cfg: ModelConfig) -> Lite0Encoder:
    """The pretrained-encoder option (``cfg.encoder == "lite0"``); imports timm only here."""
    from definet.encoders import Lite0Encoder

    return Lite0Encoder(pretrained=cfg.encoder_pretrained, bn_momentum=cfg.encoder_bn_momentum)


class DeFINet(nn.Module):
    """HRNet (stride-1 stem) -> DFPL -> REAM -> SAFF. Returns ``(edge_logits, seg_logits)``.

    With ``use_ream=False`` (ablation) there is no REAM and no edge output: ``edge_logits`` is ``None`` and
    SAFF fuses DFPL's full-resolution level directly. With ``encoder="lite0"`` the backbone is ImageNet
    EfficientNet-Lite0 (features at 1/2 .. 1/16, :mod:`definet.encoders`): the decoder is unchanged and its
    1/2-resolution logits are upsampled bilinearly to the input size.
    """

    def __init__(self, cfg: ModelConfig = ModelConfig()):
        super().__init__()
        if cfg.encoder == "lite0":
            self.backbone = build_encoder(cfg)
            channels, self.out_stride = self.backbone.channels, self.backbone.strides[0]
        else:
            spec = HRNetSpec(stem_channels=cfg.stem_channels, stage1_planes=cfg.stage1_planes,
                             channels=tuple(cfg.channels), modules=tuple(cfg.stage_modules),
                             bn_momentum=cfg.hrnet_bn_momentum)
            self.backbone = HRNet(spec)
            channels, self.out_stride = tuple(cfg.channels), 1
        self.dfpl = DFPL(channels, cfg.fpn_out)
        self.ream = REAM(cfg.fpn_out) if cfg.use_ream else None
        self.saff = SAFF(cfg.fpn_out)
        if cfg.encoder != "lite0":
            self.backbone.init_weights(cfg.hrnet_init)
            if cfg.pretrained:
                load_hrnet_pretrained(self.backbone, cfg.pretrained)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        check_input(x, 8 * self.out_stride)
        low1, low2, mid, high = self.dfpl(self.backbone(x))
        if self.ream is None:
            edge, seg = None, self.saff(low1, high)
        else:
            low_mid, edge = self.ream(low1, low2, mid)
            seg = self.saff(low_mid, high)
        if self.out_stride > 1:
            edge = None if edge is None else _upsample_to(edge, x)
            seg = _upsample_to(seg, x)
        return edge, seg


def _double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                         nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class UNet(nn.Module):
    """The "basic encoder-decoder structure" baseline: a plain U-Net (4 levels, max-pool down, bilinear up,
    skip concatenation, double 3x3 conv-BN-ReLU). Same interface as DeFI-Net: ``(None, seg_logits)``."""

    def __init__(self, widths: tuple[int, ...] = (32, 64, 128, 256)):
        super().__init__()
        w = list(widths)
        self.down = nn.ModuleList(_double_conv(cin, cout) for cin, cout in zip([3] + w[:-1], w))
        self.up = nn.ModuleList(_double_conv(w[i + 1] + w[i], w[i]) for i in range(len(w) - 1))
        self.head = nn.Conv2d(w[0], 1, 1)

    def forward(self, x: torch.Tensor) -> tuple[None, torch.Tensor]:
        check_input(x)
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        for i in reversed(range(len(self.up))):
            x = self.up[i](torch.cat([_upsample_to(x, skips[i]), skips[i]], 1))
        return None, self.head(x)


class EncoderUNet(nn.Module):
    """The U-Net baseline on a pretrained encoder (``encoder="lite0"``): the same four encoder features as
    DeFI-Net's decoder gets, decoded U-Net style from the coarsest up (bilinear x2, concatenate the skip, double
    3x3 conv-BN-ReLU), a 1x1 head, logits upsampled bilinearly from 1/2 to the input size. Only the decoder
    differs from :class:`DeFINet` on the same encoder, so a comparison isolates the paper's decoder."""

    def __init__(self, encoder: nn.Module, widths: tuple[int, ...] = (32, 64, 128)):
        super().__init__()
        channels, self.out_stride = tuple(encoder.channels), encoder.strides[0]
        if len(widths) != len(channels) - 1:
            raise ValueError(f"unet_decoder_widths needs {len(channels) - 1} widths (fine to coarse), got {widths}")
        self.backbone = encoder
        below = list(widths[1:]) + [channels[-1]]  # width of the decoder level each one receives
        self.up = nn.ModuleList(_double_conv(cb + cs, w) for cb, cs, w in zip(below, channels[:-1], widths))
        self.head = nn.Conv2d(widths[0], 1, 1)

    def forward(self, x: torch.Tensor) -> tuple[None, torch.Tensor]:
        check_input(x, 8 * self.out_stride)
        feats = self.backbone(x)
        y = feats[-1]
        for i in reversed(range(len(self.up))):
            y = self.up[i](torch.cat([_upsample_to(y, feats[i]), feats[i]], 1))
        return None, _upsample_to(self.head(y), x)


def build_model(cfg: ModelConfig) -> nn.Module:
    """DeFI-Net or the U-Net baseline from the config (on the pretrained Lite0 encoder when ``encoder="lite0"``)."""
    if cfg.encoder not in ("default", "lite0"):
        raise ValueError(f"unknown encoder {cfg.encoder!r}; expected 'default' or 'lite0'")
    if cfg.arch == "definet":
        return DeFINet(cfg)
    if cfg.arch == "unet":
        if cfg.encoder == "lite0":
            return EncoderUNet(build_encoder(cfg), tuple(cfg.unet_decoder_widths))
        return UNet(cfg.unet_widths)
    raise ValueError(f"unknown arch {cfg.arch!r}; expected 'definet' or 'unet'")


def count_parameters(module: nn.Module | None) -> int:
    return 0 if module is None else sum(p.numel() for p in module.parameters())
