"""NL-RAN: a deep residual 3-D attention network with a non-local block (arXiv 2408.04300).

No official code is public and the paper's architecture table was not available to us, so this is a
**reconstruction** from the two building blocks the paper names (see the README's Deviations):

* the Residual Attention Network (Wang et al., CVPR 2017): pre-activation bottleneck residual units and
  attention modules whose soft-mask branch is a bottom-up/top-down hourglass with skip connections, ending in
  a sigmoid on every element ("mixed attention"); the module output is ``(1 + M(x)) * T(x)`` (attention
  residual learning, RAN Eq. 3), made 3-D;
* the non-local block (Wang et al., CVPR 2018), embedded-Gaussian version, Eqs. 1-3 and 6 there, built as
  the official code builds it (N(0, 0.01) init, input max-pooled before phi / g, optional d^-1/2 scale,
  output BN initialised to zero so the block starts as the identity).

Layout (RAN-56-like, three stages, one attention module per stage, the stage-``s`` module with ``2 - s``
skip connections in its mask branch):

    stem -> [unit, Attention(skips=2)] -> [unit/s2, Attention(skips=1)] -> NonLocal -> [unit/s3, Attention(0)]
         -> [unit/s4, final_units x unit] -> BN-ReLU ("final") -> global average pool -> FC(3)

with RAN's strides ``stage_strides = (s2, s3, s4) = (2, 2, 2)`` by default; the CPU config uses (2, 2, 1) and
a stride-1 stem so that the final map (CAM / Grad-CAM) of a 32^3 volume is 4^3 instead of 1^3.

Training from scratch: convolutions start from He et al.'s normal initialisation and, by default, the last
convolution of every pre-activation residual unit starts at zero (``zero_init_residual``), so every unit
starts as the identity. Without it the deep stack of pre-activation units (no BN after the last convolution
of a branch) amplifies the gradient on its way to the input by ~2x per unit, and NL-RAN did not learn
(README, Deviations).

``forward(x, return_attention=True)`` also returns the soft masks ``M`` of every attention module; the first
one, averaged over channels and upsampled to the input, is the paper's heat map (:mod:`nlran.heatmaps`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ResidualUnit3d(nn.Module):
    """Pre-activation bottleneck residual unit (RAN Sec. 3.4, after He et al. 2016), in 3-D.

    ``BN-ReLU-conv1 -> BN-ReLU-conv3 (stride) -> BN-ReLU-conv1`` plus an identity shortcut, or a 1x1x1
    projection of the pre-activated input when the width or the stride changes.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, expansion: int = 4):
        super().__init__()
        mid = max(out_channels // expansion, 1)
        self.bn1 = nn.BatchNorm3d(in_channels)
        self.conv1 = nn.Conv3d(in_channels, mid, 1, bias=False)
        self.bn2 = nn.BatchNorm3d(mid)
        self.conv2 = nn.Conv3d(mid, mid, 3, stride=stride, padding=1, bias=False)
        self.bn3 = nn.BatchNorm3d(mid)
        self.conv3 = nn.Conv3d(mid, out_channels, 1, bias=False)
        self.shortcut = (nn.Conv3d(in_channels, out_channels, 1, stride=stride, bias=False)
                         if stride != 1 or in_channels != out_channels else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = F.relu(self.bn1(x))
        out = self.conv1(pre)
        out = self.conv2(F.relu(self.bn2(out)))
        out = self.conv3(F.relu(self.bn3(out)))
        return out + (self.shortcut(pre) if self.shortcut is not None else x)


def _units(channels: int, n: int, expansion: int = 4) -> nn.Sequential:
    return nn.Sequential(*[ResidualUnit3d(channels, channels, expansion=expansion) for _ in range(n)])


def attention_residual(mask: torch.Tensor, trunk: torch.Tensor) -> torch.Tensor:
    """Attention residual learning, RAN Eq. 3: ``H(x) = (1 + M(x)) * T(x)`` with ``M`` in (0, 1).

    With ``M = 0`` the module passes the trunk features unchanged, so stacking modules cannot make the
    features vanish the way naive ``M * T`` does.
    """
    return (1.0 + mask) * trunk


class SoftMaskBranch3d(nn.Module):
    """The soft-mask branch M(x) of a RAN attention module, in 3-D (RAN Sec. 3.2-3.3, Fig. 2).

    Bottom-up: ``skips + 1`` max-pool (3, stride 2) levels, each followed by ``r`` residual units; the
    first ``skips`` levels also feed a skip-connection unit. Top-down: trilinear upsampling back to each
    level's size, adding the bottom-up features and the skip unit, then ``r`` residual units; a last
    upsampling to the trunk's size, then ``BN-ReLU-conv1x1-BN-ReLU-conv1x1-sigmoid`` (mixed attention:
    a sigmoid on every channel and position, RAN Eq. 4 ``f_1``).
    """

    def __init__(self, channels: int, skips: int, r: int = 1, expansion: int = 4):
        super().__init__()
        self.skips = skips
        self.pool = nn.MaxPool3d(3, stride=2, padding=1)
        # Bottom-up: level 0 .. skips; the deepest level has 2r units (RAN's hourglass bottom).
        self.down = nn.ModuleList([_units(channels, 2 * r if i == skips else r, expansion) for i in range(skips + 1)])
        self.skip = nn.ModuleList([ResidualUnit3d(channels, channels, expansion=expansion) for _ in range(skips)])
        self.up = nn.ModuleList([_units(channels, r, expansion) for _ in range(skips)])
        self.head = nn.Sequential(
            nn.BatchNorm3d(channels), nn.ReLU(inplace=True), nn.Conv3d(channels, channels, 1, bias=False),
            nn.BatchNorm3d(channels), nn.ReLU(inplace=True), nn.Conv3d(channels, channels, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats, skips = [], []
        out = x
        for i, units in enumerate(self.down):
            out = units(self.pool(out))
            feats.append(out)
            if i < self.skips:
                skips.append(self.skip[i](out))
        for i in reversed(range(self.skips)):  # top-down, from the deepest level back up
            out = F.interpolate(out, size=feats[i].shape[2:], mode="trilinear", align_corners=False)
            out = self.up[i](out + feats[i] + skips[i])
        out = F.interpolate(out, size=x.shape[2:], mode="trilinear", align_corners=False)
        return torch.sigmoid(self.head(out))


class AttentionModule3d(nn.Module):
    """A 3-D RAN attention module (RAN Sec. 3.1): ``p`` units -> trunk T (``t`` units) and soft mask M ->
    ``(1 + M) * T`` -> ``p`` units. With ``use_attention=False`` the mask branch is absent and the module
    is the plain residual stack of the same trunk depth (the "no attention" ablation)."""

    def __init__(self, channels: int, skips: int, p: int = 1, t: int = 2, r: int = 1, use_attention: bool = True,
                 expansion: int = 4):
        super().__init__()
        self.pre = _units(channels, p, expansion)
        self.trunk = _units(channels, t, expansion)
        self.mask = SoftMaskBranch3d(channels, skips, r, expansion) if use_attention else None
        self.post = _units(channels, p, expansion)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = self.pre(x)
        trunk = self.trunk(x)
        if self.mask is None:
            return self.post(trunk), None
        mask = self.mask(x)
        return self.post(attention_residual(mask, trunk)), mask


class NonLocalBlock3d(nn.Module):
    """Embedded-Gaussian non-local block (Wang et al., CVPR 2018, Eqs. 1, 3 and 6), as the official code
    (facebookresearch/video-nonlocal-net, ``lib/models/nonlocal_helper.py`` with ``lib/core/config.py``'s
    defaults) builds it.

    ``y_i = sum_j softmax_j(s * theta(x_i)^T phi(x_j)) g(x_j)`` and ``z = BN(W_z y) + x`` (Eq. 6), with
    ``theta``, ``phi``, ``g`` and ``W_z`` 1x1x1 convolutions with bias (``inter_channels`` = C/2), and

    * ``sub_sample``: the *input* is max-pooled (2x2x2, stride 2) before ``phi`` and ``g`` (their Sec. 3.3;
      official ``USE_MAXPOOL``, which pools ``blob_in`` and then applies the phi / g convolutions; the
      video code pools 1x2x2, we pool all three axes of a CT volume);
    * ``scale``: ``s = inter_channels ** -0.5`` (official ``USE_SCALE: True``); ``False`` gives ``s = 1``, the
      formula as written in both papers (NL-RAN's summaries quote Wang et al.'s unscaled Eq. 3);
    * initialisation (:meth:`reset_parameters`): every convolution N(0, ``init_std`` = 0.01), biases 0
      (official ``CONV_INIT_STD``), and the output BN's scale (and shift) 0 (``BN_INIT_GAMMA: 0``), so
      the block is the identity at initialisation (their Sec. 4.1).
    """

    def __init__(self, channels: int, inter_channels: int | None = None, sub_sample: bool = True,
                 scale: bool = True, init_std: float = 0.01):
        super().__init__()
        self.inter = inter_channels or max(channels // 2, 1)
        self.scale = self.inter ** -0.5 if scale else 1.0
        self.init_std = init_std
        self.theta = nn.Conv3d(channels, self.inter, 1)
        self.phi = nn.Conv3d(channels, self.inter, 1)
        self.g = nn.Conv3d(channels, self.inter, 1)
        self.pool = nn.MaxPool3d(2, stride=2, ceil_mode=True) if sub_sample else nn.Identity()
        self.w_z = nn.Conv3d(self.inter, channels, 1)
        self.bn = nn.BatchNorm3d(channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The official initialisation: N(0, init_std) convolutions, zero biases, zero output BN."""
        for conv in (self.theta, self.phi, self.g, self.w_z):
            nn.init.normal_(conv.weight, std=self.init_std)
            nn.init.zeros_(conv.bias)
        nn.init.zeros_(self.bn.weight)
        nn.init.zeros_(self.bn.bias)

    def affinity(self, x: torch.Tensor, pooled: torch.Tensor | None = None) -> torch.Tensor:
        """The normalised pairwise function ``f(x_i, x_j) / C(x)`` = softmax over j, shape (B, N, N')."""
        pooled = self.pool(x) if pooled is None else pooled
        theta = self.theta(x).flatten(2).transpose(1, 2)  # (B, N, C')
        phi = self.phi(pooled).flatten(2)  # (B, C', N')
        return torch.softmax((theta @ phi) * self.scale, dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, *size = x.shape
        pooled = self.pool(x)
        g = self.g(pooled).flatten(2).transpose(1, 2)  # (B, N', C')
        y = (self.affinity(x, pooled) @ g).transpose(1, 2).reshape(b, self.inter, *size)
        return self.bn(self.w_z(y)) + x


def init_weights(model: nn.Module, zero_init_residual: bool = False) -> None:
    """He et al. (2015) initialisation for training from scratch, as ResNet / RAN (and MONAI's ResNet) use:
    convolutions ``kaiming_normal_(fan_out, relu)``, BN scale 1 and shift 0, biases 0; the non-local
    block keeps its official initialisation (:meth:`NonLocalBlock3d.reset_parameters`). With
    ``zero_init_residual`` the last
    convolution of every :class:`ResidualUnit3d` starts at zero, so every unit starts as the identity."""
    for m in model.modules():
        if isinstance(m, nn.Conv3d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm3d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    for m in model.modules():
        if isinstance(m, NonLocalBlock3d):
            m.reset_parameters()  # the official non-local initialisation, not He's
        elif isinstance(m, ResidualUnit3d) and zero_init_residual:
            nn.init.zeros_(m.conv3.weight)


class NLRAN(nn.Module):
    """Deep residual 3-D attention non-local network (NL-RAN), a reconstruction (module docstring).

    Args:
        in_channels: input channels (1 for CT).
        num_classes: 3 (COVID-19, common pneumonia, normal).
        widths: channels of the stem and of stages 1-4.
        stem_stride: stride of the 3x3x3 stem convolution (RAN: a 7x7 stride-2 conv + max-pool).
        stem_pool: a 3x3x3 stride-2 max-pool after the stem.
        p, t, r: RAN's attention-module hyper-parameters (paper: 1, 2, 1).
        use_attention: attention modules with soft masks (False: the "no attention" ablation).
        use_nonlocal: the non-local block after stage 2 (False: the "no non-local" ablation).
        nonlocal_sub_sample: 2x max-pool of the input of phi and g in the non-local block.
        nonlocal_scale: scale the non-local affinities by inter_channels^-1/2 (official code: yes).
        dropout: dropout before the classifier.
        expansion: bottleneck expansion of the residual units (RAN / ResNet: 4; 1 = full-width 3x3x3 convs).
        final_units: residual units after the first unit of stage 4 (RAN-56: 2).
        stage_strides: strides of the first units of stages 2, 3 and 4 (RAN: 2, 2, 2). With the stem's
            stride and pool they set the size of the final feature map, i.e. of CAM / Grad-CAM.
        zero_init_residual: start the last convolution of every residual unit at zero, so that every unit
            is the identity at initialisation (Goyal et al. 2017's "zero gamma" for pre-activation units).
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 3, widths: tuple[int, ...] = (16, 64, 128, 256, 512),
                 stem_stride: int = 2, stem_pool: bool = True, p: int = 1, t: int = 2, r: int = 1,
                 use_attention: bool = True, use_nonlocal: bool = True, nonlocal_sub_sample: bool = True,
                 nonlocal_scale: bool = True,
                 dropout: float = 0.0, expansion: int = 4, final_units: int = 2,
                 stage_strides: tuple[int, int, int] = (2, 2, 2), zero_init_residual: bool = True):
        super().__init__()
        if len(widths) != 5:
            raise ValueError(f"widths must give the stem and 4 stages (5 values), got {widths}")
        if len(stage_strides) != 3:
            raise ValueError(f"stage_strides must give stages 2, 3 and 4 (3 values), got {stage_strides}")
        w0, w1, w2, w3, w4 = widths
        s2, s3, s4 = stage_strides
        self.stem = nn.Sequential(nn.Conv3d(in_channels, w0, 3, stride=stem_stride, padding=1, bias=False),
                                  nn.BatchNorm3d(w0), nn.ReLU(inplace=True),
                                  nn.MaxPool3d(3, stride=2, padding=1) if stem_pool else nn.Identity())
        e = expansion
        self.unit1 = ResidualUnit3d(w0, w1, expansion=e)
        self.attention1 = AttentionModule3d(w1, skips=2, p=p, t=t, r=r, use_attention=use_attention, expansion=e)
        self.unit2 = ResidualUnit3d(w1, w2, stride=s2, expansion=e)
        self.attention2 = AttentionModule3d(w2, skips=1, p=p, t=t, r=r, use_attention=use_attention, expansion=e)
        self.nonlocal_block = (NonLocalBlock3d(w2, sub_sample=nonlocal_sub_sample, scale=nonlocal_scale)
                               if use_nonlocal else None)
        self.unit3 = ResidualUnit3d(w2, w3, stride=s3, expansion=e)
        self.attention3 = AttentionModule3d(w3, skips=0, p=p, t=t, r=r, use_attention=use_attention, expansion=e)
        self.stage4 = nn.Sequential(ResidualUnit3d(w3, w4, stride=s4, expansion=e), _units(w4, final_units, e))
        self.final = nn.Sequential(nn.BatchNorm3d(w4), nn.ReLU(inplace=True))  # CAM / Grad-CAM target layer
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(w4, num_classes)
        init_weights(self, zero_init_residual)

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The final feature map (after ``final``) and the soft masks of the attention modules."""
        if x.ndim != 5:
            raise ValueError(f"NLRAN expects a (B, C, D, H, W) volume batch, got shape {tuple(x.shape)}")
        masks = []
        x, m = self.attention1(self.unit1(self.stem(x)))
        masks.append(m)
        x, m = self.attention2(self.unit2(x))
        masks.append(m)
        if self.nonlocal_block is not None:
            x = self.nonlocal_block(x)
        x, m = self.attention3(self.unit3(x))
        masks.append(m)
        return self.final(self.stage4(x)), [m for m in masks if m is not None]

    def forward(self, x: torch.Tensor, return_attention: bool = False):
        """Logits (B, num_classes); with ``return_attention`` also the list of soft masks (B, C_s, ...)."""
        feats, masks = self.features(x)
        logits = self.fc(self.dropout(self.pool(feats).flatten(1)))
        return (logits, masks) if return_attention else logits
