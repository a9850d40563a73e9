"""The offline ImageNet EfficientNet-Lite0 weights load strictly into timm's layout and classify real photos."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage import data

from shared.data.pretrained import LITE0_FEATURE_CHANNELS, LITE0_MEAN, LITE0_STD, efficientnet_lite0, lite0_state_dict


@pytest.fixture(scope="module")
def classifier():
    return efficientnet_lite0().eval()


def _batch(image: np.ndarray) -> torch.Tensor:
    x = torch.tensor(image).permute(2, 0, 1).float()[None] / 255
    x = F.interpolate(x, size=(224, 224), mode="bilinear", antialias=True)
    return (x - torch.tensor(LITE0_MEAN)[:, None, None]) / torch.tensor(LITE0_STD)[:, None, None]


def test_every_tensor_maps_by_shape():
    import timm

    state = lite0_state_dict()
    target = timm.create_model("tf_efficientnet_lite0", pretrained=False).state_dict()
    assert list(state) == list(target)
    assert all(state[k].shape == target[k].shape for k in target)


@pytest.mark.parametrize(("photo", "imagenet_class"), [("chelsea", 285), ("coffee", 967)])  # Egyptian cat, espresso
def test_pretrained_classifies_real_photos(classifier, photo, imagenet_class):
    with torch.no_grad():
        probs = classifier(_batch(getattr(data, photo)())).softmax(-1)[0]
    assert probs.argmax().item() == imagenet_class
    assert probs.max().item() > 0.5


def test_random_init_does_not_classify(classifier):
    random_model = efficientnet_lite0(pretrained=False).eval()
    with torch.no_grad():
        probs = random_model(_batch(data.chelsea())).softmax(-1)[0]
    assert probs.max().item() < 0.1


def test_features_only_scales_and_weights(classifier):
    encoder = efficientnet_lite0(features_only=True).eval()
    feats = encoder(torch.zeros(1, 3, 64, 64))
    assert [f.shape[1] for f in feats] == list(LITE0_FEATURE_CHANNELS)
    assert [f.shape[-1] for f in feats] == [32, 16, 8, 4, 2]
    assert torch.equal(encoder.state_dict()["conv_stem.weight"], classifier.state_dict()["conv_stem.weight"])
