"""The pretrained-encoder option: ImageNet EfficientNet-Lite0 feeding DeFI-Net's decoder (a deviation; the paper's
backbone is ImageNet HRNet-W18-small-v2, whose weights cannot be had offline).

The paper trains DeFI-Net from an ImageNet-pretrained encoder (Sec. III-A). The only real ImageNet weights that ship
offline here are EfficientNet-Lite0's (:func:`shared.data.pretrained.efficientnet_lite0`, timm
``tf_efficientnet_lite0``, loaded strictly with ``weights_only``). :class:`Lite0Encoder` keeps its stem and first
five block stages, whose outputs are four feature maps at strides 2, 4, 8 and 16 with (16, 24, 40, 112) channels --
the same factor-2 pyramid of four scales, and nearly the same widths, as HRNet-W18's (18, 36, 72, 144) at 1, 1/2,
1/4, 1/8 -- so DFPL, REAM and SAFF run on it unchanged. The stride-32 stages (192 and 320 channels) are dropped:
DeFI-Net's decoder uses four scales and they would only cost compute. The decoder's output is at stride 2; the
models upsample the logits bilinearly to the input size (:class:`definet.model.DeFINet`).

``timm`` and the weights package are imported only when an encoder is built.
"""

from __future__ import annotations

import torch
from torch import nn

from definet.data import TEST_MEAN, TEST_STD

#: channels and strides of the four feature maps :class:`Lite0Encoder` returns
LITE0_CHANNELS = (16, 24, 40, 112)
LITE0_STRIDES = (2, 4, 8, 16)
LITE0_BLOCK_STAGES = 5  # blocks[0..4] of tf_efficientnet_lite0: the stage ending with 112 channels at stride 16


class Lite0Encoder(nn.Module):
    """EfficientNet-Lite0 (ImageNet weights when ``pretrained``) as a four-scale encoder.

    Inputs come normalised with the official DeFI-Net test statistics (``definet.data.TEST_MEAN / TEST_STD``; the
    training statistics differ by < 0.04); the encoder maps them back to the [-1, 1] range (mean = std = 0.5) that
    the ImageNet weights were trained with. ``bn_momentum`` overrides timm's TF-port BatchNorm momentum (0.01),
    for the same reason as ``ModelConfig.hrnet_bn_momentum``: a short run must not evaluate with stale running
    statistics.
    """

    channels = LITE0_CHANNELS
    strides = LITE0_STRIDES

    def __init__(self, pretrained: bool = True, bn_momentum: float | None = 0.1):
        super().__init__()
        from shared.data.pretrained import LITE0_MEAN, LITE0_STD, efficientnet_lite0

        net = efficientnet_lite0(pretrained=pretrained, features_only=True, out_indices=(0, 1, 2, 3))
        if tuple(net.feature_info.channels()) != LITE0_CHANNELS or tuple(net.feature_info.reduction()) != LITE0_STRIDES:
            raise ValueError(f"unexpected EfficientNet-Lite0 features {net.feature_info.channels()} at strides "
                             f"{net.feature_info.reduction()}; expected {LITE0_CHANNELS} at {LITE0_STRIDES}")
        net.blocks = net.blocks[:LITE0_BLOCK_STAGES]  # the stride-32 stages feed no output
        if bn_momentum is not None:
            for m in net.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.momentum = bn_momentum
        self.net = net
        # x_lite0 = (x * std_data + mean_data - 0.5) / 0.5 = x * scale + shift
        mean, std = torch.tensor(TEST_MEAN), torch.tensor(TEST_STD)
        lite_mean, lite_std = torch.tensor(LITE0_MEAN), torch.tensor(LITE0_STD)
        self.register_buffer("scale", (std / lite_std).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("shift", ((mean - lite_mean) / lite_std).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.net(x * self.scale + self.shift)
