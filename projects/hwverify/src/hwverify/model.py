"""Siamese ResNet-18 verifier (the supervised baseline of VLM-HV / SSL-HV, ``models/supervised/resnet18.py``).

Shared backbone: torchvision ResNet-18 with a new 1-channel ``conv1`` (grey input) and ``fc`` removed, giving
512-d features; an embedding layer maps them to 64-d. The pair head acts on the *signed* difference of the two
embeddings (SSL-HV calls it "l1_distance" but takes no absolute value):

    e_k = W_e f(x_k) + b_e,   d = e_1 - e_2,   logits = W_2 ReLU(W_1 ReLU(d) + b_1) + b_2   (2 classes)

trained with cross-entropy, class 1 = same writer.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

IMAGENET_WEIGHTS = "resnet18-f37072fd.pth"


def build_backbone(weights: str | None = None) -> nn.Module:
    """ResNet-18 -> 512-d features for 1-channel images; ImageNet weights from a local torchvision file.

    The 1-channel ``conv1`` is new (SSL-HV replaces ``conv1`` with a freshly initialised layer too); with
    ImageNet weights it starts from the sum of the pretrained RGB kernels, the usual grey conversion.
    """
    from torchvision.models import resnet18  # imported here: torchvision's import pulls in torch._dynamo (~4 s)

    net = resnet18(weights=None)
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise FileNotFoundError(
                f"ResNet-18 ImageNet weights '{path}' not found. Download torchvision's {IMAGENET_WEIGHTS} "
                "(ResNet18_Weights.IMAGENET1K_V1) on a machine with network access and pass its path as "
                "resnet.weights=PATH, or set resnet.weights=null for random initialisation.")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            net.load_state_dict(state)
        except Exception as err:  # noqa: BLE001 -- any unpickling/shape failure means the wrong file
            raise ValueError(f"'{path}' is not a torchvision ResNet-18 state dict: {err}") from err
    rgb = net.conv1.weight.data
    net.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    if weights is not None:
        net.conv1.weight.data.copy_(rgb.sum(dim=1, keepdim=True))
    net.fc = nn.Identity()
    return net


class SiameseResNet18(nn.Module):
    """The siamese verifier; ``forward(x1, x2)`` gives (B, 2) logits, class 1 = same writer."""

    def __init__(self, embedding_dim: int = 64, hidden_dim: int = 32, weights: str | None = None,
                 freeze_backbone: bool = False):
        super().__init__()
        self.backbone = build_backbone(weights)
        self.embed = nn.Linear(512, embedding_dim)
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(embedding_dim, hidden_dim), nn.ReLU(),
                                  nn.Linear(hidden_dim, 2))
        if freeze_backbone:  # SSL-HV: deactivate_requires_grad(backbone); the new grey conv1 keeps training
            for name, p in self.backbone.named_parameters():
                p.requires_grad_(name.startswith("conv1."))

    def embedding(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, S, S) inverted grey images -> (B, embedding_dim)."""
        if x.ndim != 4 or x.shape[1] != 1:
            raise ValueError(f"expected (B, 1, S, S) grey images, got shape {tuple(x.shape)}")
        return self.embed(self.backbone(x))

    def pair_logits(self, e1: torch.Tensor, e2: torch.Tensor) -> torch.Tensor:
        """Logits from two embeddings through the head on the signed difference e1 - e2."""
        return self.head(e1 - e2)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        return self.pair_logits(self.embedding(x1), self.embedding(x2))


def same_writer_score(logits: torch.Tensor) -> torch.Tensor:
    """Probability of class 1 (same writer): the score behind AUC and EER."""
    return logits.softmax(dim=-1)[..., 1]
