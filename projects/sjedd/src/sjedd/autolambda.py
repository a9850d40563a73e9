"""Bi-level task weighting (Sec. III-E), after Auto-Lambda (Liu et al., 2022) as the official
``lambda_optimizer.py`` (``AutoLambda_SO``) implements it.

Upper level: choose the task weights lambda so that one training step on sum_k lambda_k L_k lowers the
primary task's loss (here the binary task, ``pri_weights = [1, 0, 0]``) on a second batch. Per iteration:

1. virtual step  theta' = theta - alpha (grad_theta sum_k lambda_k L_k^train(theta) + m + wd theta), with alpha the
   current learning rate, m the optimiser's momentum buffer (SGD only; 0 for Adam/AdamW) and wd its weight decay;
2. upper-level loss  L^val(theta') = sum_k pri_k L_k^val(theta') on the "val" batch, and d = grad_theta' L^val;
3. hyper-gradient by a central finite difference (DARTS):  eps = 0.01 / ||d||,
   h = (grad_lambda L^train(theta + eps d) - grad_lambda L^train(theta - eps d)) / (2 eps),
   lambda.grad = -alpha h, then one Adam step on lambda.

Since grad_lambda L^train = (L_1, ..., L_K), h_k ~ grad_theta L_k(theta) . d, so lambda.grad approximates the exact
d L^val(theta') / d lambda = -alpha grad_theta L_k(theta) . grad_theta' L^val(theta').
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

TaskLosses = Callable[[nn.Module, object], torch.Tensor]
"""``task_losses(model, batch) -> (K,) tensor`` of the K task losses of ``model`` on ``batch``."""


class AutoLambda:
    """Meta-weights lambda (K,) and their Adam optimiser, with the unrolled finite-difference update."""

    def __init__(self, model: nn.Module, task_losses: TaskLosses, n_tasks: int = 3,
                 primary: tuple[float, ...] = (1, 0, 0),
                 init: float = 1.0, lr: float = 1e-3):
        if len(primary) != n_tasks:
            raise ValueError(f"primary weights {primary} must have one entry per task ({n_tasks})")
        self.model = model
        self.model_ = copy.deepcopy(model)  # holds theta' (the virtual step)
        self.task_losses = task_losses
        self.meta_weights = torch.full((n_tasks,), float(init), requires_grad=True)
        self.primary = torch.tensor(primary, dtype=torch.float32)
        self.meta_optim = torch.optim.Adam([self.meta_weights], lr=lr)

    def weighted(self, losses: torch.Tensor) -> torch.Tensor:
        """sum_k lambda_k L_k (lambda detached for the model's own step)."""
        return (self.meta_weights.detach().to(losses) * losses).sum()

    def _params(self, model: nn.Module) -> list[torch.Tensor]:
        return [p for p in model.parameters() if p.requires_grad]

    @torch.no_grad()
    def _sync(self) -> None:
        self.model_.load_state_dict(self.model.state_dict())

    def virtual_step(self, train_batch, alpha: float, model_optim: torch.optim.Optimizer) -> None:
        """Step 1: theta' = theta - alpha (g + m + wd theta) into the copy ``model_``."""
        self._sync()
        losses = self.task_losses(self.model, train_batch)
        params = self._params(self.model)
        grads = torch.autograd.grad((self.meta_weights.to(losses) * losses).sum(), params, allow_unused=True)
        group = model_optim.param_groups[0]
        with torch.no_grad():
            for p, p_, g in zip(params, self._params(self.model_), grads):
                g = torch.zeros_like(p) if g is None else g
                momentum = 0.0
                if "momentum" in group and group["momentum"]:  # SGD with momentum (as the official code)
                    momentum = model_optim.state[p].get("momentum_buffer", torch.zeros_like(p)) * group["momentum"]
                p_.copy_(p - alpha * (g + momentum + group.get("weight_decay", 0.0) * p))

    def step(self, train_batch, val_batch, alpha: float, model_optim: torch.optim.Optimizer) -> torch.Tensor:
        """One meta update of lambda; returns the hyper-gradient lambda.grad that was applied."""
        self.meta_optim.zero_grad()
        self.virtual_step(train_batch, alpha, model_optim)
        val_losses = self.task_losses(self.model_, val_batch)
        val_loss = (self.primary.to(val_losses) * val_losses).sum()
        d = [g if g is not None else torch.zeros_like(p) for p, g in zip(
            self._params(self.model_), torch.autograd.grad(val_loss, self._params(self.model_), allow_unused=True))]
        hessian = self.finite_difference(d, train_batch)
        self.meta_weights.grad = (-alpha * hessian).to(self.meta_weights)
        self.meta_optim.step()
        return self.meta_weights.grad.detach().clone()

    def finite_difference(self, d: list[torch.Tensor], train_batch) -> torch.Tensor:
        """Step 3: (grad_lambda L^train(theta + eps d) - grad_lambda L^train(theta - eps d)) / (2 eps)."""
        eps = 0.01 / torch.cat([v.reshape(-1) for v in d]).norm()
        params = self._params(self.model)
        with torch.no_grad():
            for p, v in zip(params, d):
                p.add_(eps * v)
        plus = self.task_losses(self.model, train_batch).detach()
        with torch.no_grad():
            for p, v in zip(params, d):
                p.sub_(2 * eps * v)
        minus = self.task_losses(self.model, train_batch).detach()
        with torch.no_grad():
            for p, v in zip(params, d):
                p.add_(eps * v)
        return (plus - minus) / (2 * eps)
