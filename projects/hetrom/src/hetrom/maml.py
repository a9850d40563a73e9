"""MAML's bi-level computation with ``torch.func``: inner adaptation per task, post-adaptation task losses.

Inner problem (Finn et al., 2017, Eq. 1, repeated ``steps`` times)::

    w_i <- w_i - alpha * grad_w L_i^support(w_i),    w_i initialised at phi,

and the task's outer loss is ``l_i(phi) = L_i^query(w_i(phi))``. Second-order MAML differentiates through the
inner gradient steps; first-order MAML (FOMAML) treats the inner gradients as constants. All tasks of a
meta-batch are adapted in parallel with ``torch.func.vmap``. HeTRoM changes only how the ``l_i`` are combined
into the outer objective (see :mod:`hetrom.objective`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.func import functional_call, grad, vmap

Params = dict[str, torch.Tensor]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def parameters_of(model: nn.Module) -> Params:
    """The model's parameters as the dict ``functional_call`` takes (the tensors themselves, not copies)."""
    return dict(model.named_parameters())


def adapt(model: nn.Module, params: Params, x_support: torch.Tensor, y_support: torch.Tensor, loss_fn: LossFn,
          steps: int, inner_lr: float, first_order: bool = False) -> Params:
    """``steps`` inner SGD steps on one task's support set (MAML Eq. 1); returns the adapted parameters."""

    def support_loss(p: Params) -> torch.Tensor:
        return loss_fn(functional_call(model, p, (x_support,)), y_support)

    for _ in range(steps):
        grads = grad(support_loss)(params)
        if first_order:
            grads = {name: g.detach() for name, g in grads.items()}
        params = {name: p - inner_lr * grads[name] for name, p in params.items()}
    return params


def task_losses(model: nn.Module, params: Params, batch: dict[str, torch.Tensor], loss_fn: LossFn, steps: int,
                inner_lr: float, first_order: bool = False) -> torch.Tensor:
    """The post-adaptation query loss ``l_i(phi)`` of every task of a meta-batch, shape ``(n,)``.

    ``batch`` holds ``x_support, y_support, x_query, y_query`` with a leading task dimension.
    Differentiable w.r.t. ``params`` (second order unless ``first_order``).
    """

    def one_task(xs, ys, xq, yq):
        adapted = adapt(model, params, xs, ys, loss_fn, steps, inner_lr, first_order)
        return loss_fn(functional_call(model, adapted, (xq,)), yq)

    return vmap(one_task)(batch["x_support"], batch["y_support"], batch["x_query"], batch["y_query"])


def adapted_predictions(model: nn.Module, params: Params, batch: dict[str, torch.Tensor], loss_fn: LossFn,
                        steps: int, inner_lr: float) -> torch.Tensor:
    """Query predictions after ``steps`` inner steps, for every task (evaluation; no outer graph)."""
    params = {name: p.detach() for name, p in params.items()}

    def one_task(xs, ys, xq):
        adapted = adapt(model, params, xs, ys, loss_fn, steps, inner_lr, first_order=True)
        return functional_call(model, adapted, (xq,))

    return vmap(one_task)(batch["x_support"], batch["y_support"], batch["x_query"]).detach()


def mse_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error (the sinusoid task loss)."""
    return ((pred - target) ** 2).mean()


def cross_entropy_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy (the few-shot classification task loss)."""
    return torch.nn.functional.cross_entropy(logits, target)
