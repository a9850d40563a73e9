"""Auto-lambda: the finite-difference hyper-gradient against brute force on a 2-parameter problem."""

import numpy as np
import torch
from torch import nn

from sjedd.autolambda import AutoLambda

A = [np.array([1.0, 0.0]), np.array([0.0, 2.0]), np.array([-1.0, 1.0])]  # task optima
V = np.array([0.5, 0.5])  # the primary task's optimum on the "val" batch


class Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.theta = nn.Parameter(torch.tensor([0.3, -0.2], dtype=torch.float64))


def toy_losses(model, batch):
    """Train batch: three quadratic tasks; val batch: the primary task's optimum moves to V."""
    centres = A if batch == "train" else [V, A[1], A[2]]
    return torch.stack([((model.theta - torch.tensor(c)) ** 2).sum() * (k + 1) for k, c in enumerate(centres)])


def brute_force_hypergradient(theta: np.ndarray, lam: np.ndarray, alpha: float, h: float = 1e-6) -> np.ndarray:
    """d/d lambda of L_val(theta - alpha sum_k lambda_k grad L_k(theta)), by central differences on lambda."""
    grads = [2 * (k + 1) * (theta - c) for k, c in enumerate(A)]

    def upper(l):
        theta_ = theta - alpha * sum(lk * g for lk, g in zip(l, grads))
        return ((theta_ - V) ** 2).sum()

    return np.array([(upper(lam + h * e) - upper(lam - h * e)) / (2 * h) for e in np.eye(3)])


def test_hypergradient_matches_brute_force():
    model = Toy()
    optim = torch.optim.SGD(model.parameters(), lr=0.1)
    autol = AutoLambda(model, toy_losses, init=1.0, lr=1e-3)
    autol.meta_weights.data = autol.meta_weights.data.double()
    theta0 = model.theta.detach().numpy().copy()
    grad = autol.step("train", "val", alpha=0.1, model_optim=optim).numpy()
    expected = brute_force_hypergradient(theta0, np.ones(3), alpha=0.1)
    np.testing.assert_allclose(grad, expected, rtol=1e-3, atol=1e-8)
    assert np.all(np.sign(grad) == np.sign(expected)) and np.abs(expected).min() > 1e-3
    # theta is restored exactly after the +/- eps evaluations, and lambda moved by Adam against its gradient
    np.testing.assert_allclose(model.theta.detach().numpy(), theta0, atol=1e-12)
    moved = autol.meta_weights.detach().numpy() - 1.0
    assert np.all(np.sign(moved) == -np.sign(expected))


def test_virtual_step_uses_weight_decay_and_momentum():
    model = Toy()
    optim = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01)
    optim.state[model.theta]["momentum_buffer"] = torch.tensor([1.0, -1.0], dtype=torch.float64)
    autol = AutoLambda(model, toy_losses, init=0.5)
    autol.virtual_step("train", alpha=0.1, model_optim=optim)
    theta = model.theta.detach().numpy()
    g = sum(0.5 * 2 * (k + 1) * (theta - c) for k, c in enumerate(A))
    expected = theta - 0.1 * (g + 0.9 * np.array([1.0, -1.0]) + 0.01 * theta)
    np.testing.assert_allclose(autol.model_.theta.detach().numpy(), expected, rtol=1e-6)
