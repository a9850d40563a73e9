"""Lockstep training of many meta-learners equals training each one on its own."""

import torch

from hetrom.maml import mse_loss, parameters_of, task_losses
from hetrom.model import SinusoidMLP
from hetrom.objective import select_tasks, selected_mean
from hetrom.population import population_task_losses, stack_models


def _batch(seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(6, 8, 1, generator=g) * 10 - 5
    y = torch.sin(x) * torch.rand(6, 1, 1, generator=g) * 5 + torch.randn(6, 8, 1, generator=g)
    return {"x_support": x[:, :4], "y_support": y[:, :4], "x_query": x[:, 4:], "y_query": y[:, 4:]}


def test_population_steps_equal_separate_adam_steps():
    rules = [("hetrom", 2, 6), ("sg", 0, 6), ("maml", 0, 6)]
    models = []
    for seed in range(3):
        torch.manual_seed(seed)
        models.append(SinusoidMLP(hidden=8))
    template, stacked = stack_models(models)
    pop_opt = torch.optim.Adam(stacked.values(), lr=0.01)
    solo_opts = [torch.optim.Adam(m.parameters(), lr=0.01) for m in models]
    for step in range(3):
        batches = [_batch(10 * step + i) for i in range(3)]
        together = {k: torch.stack([b[k] for b in batches]) for k in batches[0]}
        losses = population_task_losses(template, stacked, together, mse_loss, 1, 0.05)
        objective = sum(selected_mean(row, select_tasks(row, meth, m, k)) for row, (meth, m, k) in zip(losses, rules))
        pop_opt.zero_grad()
        objective.backward()
        pop_opt.step()
        for model, opt, batch, (meth, m, k) in zip(models, solo_opts, batches, rules):
            own = task_losses(model, parameters_of(model), batch, mse_loss, 1, 0.05)
            opt.zero_grad()
            selected_mean(own, select_tasks(own, meth, m, k)).backward()
            opt.step()
    for i, model in enumerate(models):
        for name, p in model.named_parameters():
            torch.testing.assert_close(stacked[name][i], p, rtol=1e-5, atol=1e-6)
