"""Fidelity loss and the three task losses against hand-computed values."""

import math

import pytest
import torch

from sjedd.labels import BINARY_PROMPT, label_vectors, prompts
from sjedd.losses import fidelity_loss, task_losses


def test_fidelity_loss_by_hand():
    eps = 1e-8
    # p = 0.5, g = 1: 1 - (sqrt(0.5 + eps) + sqrt(0 + eps))
    assert fidelity_loss(torch.tensor([0.5]), torch.tensor([1.0])).item() == pytest.approx(
        1 - math.sqrt(0.5 + eps) - math.sqrt(eps), abs=1e-7)
    # perfect predictions: 1 - (sqrt(1 + eps) + sqrt(eps)) ~ -1e-4 (the official eps)
    perfect = fidelity_loss(torch.tensor([1.0, 0.0]), torch.tensor([1.0, 0.0])).item()
    assert perfect == pytest.approx(1 - math.sqrt(1 + eps) - math.sqrt(eps), abs=1e-7)
    # the worst case: 1 - 2 sqrt(eps)
    assert fidelity_loss(torch.tensor([0.0]), torch.tensor([1.0])).item() == pytest.approx(1 - 2e-4, abs=1e-6)
    # averaged over entries
    two = fidelity_loss(torch.tensor([0.5, 1.0]), torch.tensor([1.0, 1.0])).item()
    assert two == pytest.approx((1 - math.sqrt(0.5 + eps) - math.sqrt(eps) + perfect) / 2, abs=1e-7)
    with pytest.raises(ValueError, match="same shape"):
        fidelity_loss(torch.zeros(2), torch.zeros(3))


def test_task_losses_split_binary_global_local():
    labels = label_vectors(["id", "real"])
    marg = labels.clone()
    marg[0, 4] = 0.0   # a wrong local node (eye) on the id sample
    marg[1, 2] = 1.0   # a wrong global node (identity) on the real sample
    losses = task_losses(marg, labels)
    wrong = fidelity_loss(torch.tensor([0.0]), torch.tensor([1.0])).item()
    right = fidelity_loss(torch.tensor([1.0]), torch.tensor([1.0])).item()
    assert losses[0].item() == pytest.approx(right, abs=1e-7)
    assert losses[1].item() == pytest.approx((wrong + 5 * right) / 6, abs=1e-7)   # 1 of 2 x 3 global entries
    assert losses[2].item() == pytest.approx((wrong + 11 * right) / 12, abs=1e-7)  # 1 of 2 x 6 local entries


def test_prompts_byte_exact():
    assert prompts() == [
        "A photo of a fake face",
        "A photo of a face with the global attribute of expression altered",
        "A photo of a face with the global attribute of identity altered",
        "A photo of a face with the global attribute of physical inconsistency altered",
        "A photo of a face with the local attribute of eye altered",
        "A photo of a face with the local attribute of eyebrow altered",
        "A photo of a face with the local attribute of lip altered",
        "A photo of a face with the local attribute of mouth altered",
        "A photo of a face with the local attribute of nose altered",
        "A photo of a face with the local attribute of skin altered",
    ]
    assert BINARY_PROMPT == prompts()[0]
    with pytest.raises(ValueError, match="unknown manipulation"):
        label_vectors(["deepfake"])
