"""Train many meta-learners in lockstep: one ``vmap`` over models of the per-task ``vmap`` of :mod:`hetrom.maml`.

Used by ``reproduce.py`` to run every (method, seed, task family) of an experiment at once. Each member has
its own parameters, task stream and selection rule; the outer objective is the sum of the members' own
objectives, whose gradient w.r.t. each member's parameters is that member's gradient alone, and Adam is
element-wise, so one Adam over the stacked parameters performs exactly the members' separate Adam steps.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.func import stack_module_state, vmap

from hetrom.maml import LossFn, Params, task_losses


def stack_models(models: list[nn.Module]) -> tuple[nn.Module, Params]:
    """A stateless template module and the members' parameters stacked along a new leading dimension."""
    params, _ = stack_module_state(models)
    template = copy.deepcopy(models[0]).to("meta")
    return template, {name: p.detach().clone().requires_grad_(True) for name, p in params.items()}


def unstack(template_model: nn.Module, params: Params, index: int) -> Params:
    """The parameters of member ``index`` (detached copies)."""
    return {name: p[index].detach().clone() for name, p in params.items()}


def population_task_losses(model: nn.Module, params: Params, batches: dict[str, torch.Tensor], loss_fn: LossFn,
                           steps: int, inner_lr: float, first_order: bool = False) -> torch.Tensor:
    """Post-adaptation query losses of every member on its own meta-batch: shape ``(members, tasks)``.

    ``params`` and ``batches`` carry a leading member dimension.
    """

    def member(p, b):
        return task_losses(model, p, b, loss_fn, steps, inner_lr, first_order)

    return vmap(member)(params, batches)
