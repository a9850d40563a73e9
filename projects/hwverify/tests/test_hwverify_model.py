"""The siamese ResNet-18: shapes, the signed-difference head, freezing, weights errors."""

import pytest
import torch

from hwverify.model import SiameseResNet18, build_backbone, same_writer_score


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return SiameseResNet18().eval()


def test_shapes_and_scores(model):
    x1, x2 = torch.rand(3, 1, 32, 32), torch.rand(3, 1, 32, 32)
    with torch.no_grad():
        logits = model(x1, x2)
        assert logits.shape == (3, 2) and model.embedding(x1).shape == (3, 64)
        s = same_writer_score(logits)
    assert torch.allclose(s, logits.softmax(-1)[:, 1]) and ((s >= 0) & (s <= 1)).all()
    with pytest.raises(ValueError, match="grey"):
        model.embedding(torch.rand(2, 3, 32, 32))


def test_head_acts_on_the_signed_difference(model):
    e1, e2 = torch.randn(4, 64), torch.randn(4, 64)
    with torch.no_grad():
        assert torch.allclose(model.pair_logits(e1, e2), model.head(e1 - e2))
        # ReLU(d) vs ReLU(-d): swapping the pair changes the logits (no abs, as in SSL-HV) ...
        assert not torch.allclose(model.pair_logits(e1, e2), model.pair_logits(e2, e1))
        # ... and shifting both embeddings by the same vector does not
        assert torch.allclose(model.pair_logits(e1 + 3.0, e2 + 3.0), model.pair_logits(e1, e2), atol=1e-5)


def test_frozen_backbone_trains_only_conv1_and_heads():
    m = SiameseResNet18(freeze_backbone=True)
    trainable = {n.split(".")[0] + "." + n.split(".")[1] for n, p in m.named_parameters() if p.requires_grad}
    assert trainable == {"backbone.conv1", "embed.weight", "embed.bias", "head.1", "head.3"}


def test_imagenet_weights_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="resnet18-f37072fd.pth"):
        build_backbone(str(tmp_path / "missing.pth"))
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a torchvision ResNet-18"):
        build_backbone(str(bad))


def test_imagenet_weights_sum_rgb_into_grey_conv1(tmp_path):
    from torchvision.models import resnet18

    ref = resnet18(weights=None)
    torch.save(ref.state_dict(), tmp_path / "w.pth")
    net = build_backbone(str(tmp_path / "w.pth"))
    assert torch.allclose(net.conv1.weight, ref.conv1.weight.sum(1, keepdim=True))
    assert torch.equal(net.layer4[1].conv2.weight, ref.layer4[1].conv2.weight)
