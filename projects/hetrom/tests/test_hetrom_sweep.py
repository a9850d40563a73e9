"""The lockstep engine of reproduce.py: batched MLP maths vs torch.func, task weights vs independent computations."""

import math

import numpy as np
import pytest
import torch

from hetrom import lockstep, sweep, weighting
from hetrom.maml import mse_loss
from hetrom.model import SinusoidMLP
from hetrom.objective import ranked_range_mask
from hetrom.population import population_task_losses, stack_models
from shared.data.sinusoid import SinusoidFamily


def _stacked(members=3, hidden=40):
    models = []
    for seed in range(members):
        torch.manual_seed(seed)
        models.append(SinusoidMLP(hidden))
    return stack_models(models)


def _batch(members=3, tasks=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(members, tasks, 20, 1, generator=g) * 10 - 5
    y = torch.sin(x) * torch.rand(members, tasks, 1, 1, generator=g) * 5 + 0.3 * torch.randn(x.shape, generator=g)
    return {"x_support": x[:, :, :10], "y_support": y[:, :, :10], "x_query": x[:, :, 10:], "y_query": y[:, :, 10:]}


def test_written_out_task_gradients_equal_autograd():
    _, params = _stacked(2, hidden=7)
    batch = _batch(2, 4)
    copies = {n: p.detach().unsqueeze(1).expand(2, 4, *p.shape[1:]).clone().requires_grad_(True)
              for n, p in params.items()}
    loss = lockstep.task_mse(copies, batch["x_support"], batch["y_support"]).sum()
    expected = dict(zip(copies, torch.autograd.grad(loss, list(copies.values()))))
    shared = lockstep.task_gradients({n: p.detach().unsqueeze(1) for n, p in params.items()},
                                     batch["x_support"], batch["y_support"])
    for name in expected:
        torch.testing.assert_close(shared[name], expected[name], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("steps", [1, 2])
@pytest.mark.parametrize("per_task", [False, True])
def test_post_adaptation_losses_and_meta_gradient_equal_torch_func(steps, per_task):
    template, params = _stacked(3)
    batch = _batch(3, 5)
    reference = population_task_losses(template, params, batch, mse_loss, steps, 0.05)
    ours, _ = lockstep.post_adaptation_losses(params, batch, steps, 0.05, per_task=per_task)
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-6)
    weights = torch.rand(3, 5)
    g_ref = torch.autograd.grad((weights * reference).sum(), list(params.values()))
    g_ours = torch.autograd.grad((weights * ours).sum(), list(params.values()))
    for a, b in zip(g_ours, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_per_task_copies_give_each_tasks_own_meta_gradient():
    _, params = _stacked(1)
    batch = _batch(1, 3)
    losses, copies = lockstep.post_adaptation_losses(params, batch, 1, 0.05, per_task=True)
    per_task = torch.autograd.grad(losses.sum(), list(copies.values()), retain_graph=True)
    for t in range(3):
        own = torch.autograd.grad(losses[0, t], list(params.values()), retain_graph=True)
        for g_all, g_own in zip(per_task, own):
            torch.testing.assert_close(g_all[0, t], g_own[0], rtol=1e-5, atol=1e-7)


def test_ranked_range_weights_match_the_single_learner_mask_and_special_cases():
    losses = torch.rand(4, 9)
    m, k = torch.tensor([0, 2, 0, 3]), torch.tensor([9, 9, 5, 4])
    w = weighting.ranked_range_weights(losses, m, k)
    for row in range(4):
        mask = ranked_range_mask(losses[row], int(m[row]), int(k[row]))
        torch.testing.assert_close(w[row], mask.float() / (k[row] - m[row]))
    torch.testing.assert_close(w[0], torch.full((9,), 1 / 9))  # m = 0, k = n: MAML's mean
    assert (w[3] > 0).sum() == 1 and losses[3][w[3] > 0] == losses[3].sort(descending=True).values[3]
    with pytest.raises(ValueError, match="0 <= m < k"):
        weighting.ranked_range_weights(losses, torch.tensor([0, 0, 5, 0]), torch.tensor([9, 9, 5, 9]))


def test_cvar_keeps_the_tasks_at_or_above_the_alpha_quantile():
    assert weighting.cvar_k(0.0, 25) == 25 and weighting.cvar_k(0.5, 25) == 13 and weighting.cvar_k(0.25, 25) == 19
    assert weighting.cvar_k(0.5, 10) == 5
    losses = torch.arange(10.0)[None]
    w = weighting.ranked_range_weights(losses, torch.tensor([0]), torch.tensor([weighting.cvar_k(0.5, 10)]))
    assert set(torch.nonzero(w[0]).flatten().tolist()) == {5, 6, 7, 8, 9}  # the upper half, losses >= VaR_0.5
    with pytest.raises(ValueError):
        weighting.cvar_k(1.0, 10)


def test_validation_thresholds_are_aorrs_mean_plus_minus_numpy_std():
    val = torch.rand(2, 50) * 3
    lo, hi = weighting.validation_thresholds(val, 2.0, 1.0)
    v = val.numpy()
    np.testing.assert_allclose(hi.numpy(), v.mean(1) + 1 * v.std(1), rtol=1e-5)
    np.testing.assert_allclose(lo.numpy(), v.mean(1) - 2 * v.std(1), rtol=1e-5)
    lo, hi = weighting.validation_range_thresholds(val, torch.tensor([0.0, 0.1]), torch.tensor([1.0, 0.9]))
    torch.testing.assert_close(lo, torch.stack([val[0].min(), torch.quantile(val[1], 0.1)]))
    torch.testing.assert_close(hi, torch.stack([val[0].max(), torch.quantile(val[1], 0.9)]))


def test_batch_thresholds_keep_everything_when_losses_are_identical():
    losses = torch.full((2, 6), 0.7)
    lo, hi = weighting.batch_thresholds(losses)
    torch.testing.assert_close(weighting.threshold_weights(losses, lo, hi), torch.full((2, 6), 1 / 6))


def test_threshold_and_reweight_weights_normalise_and_can_be_empty():
    losses = torch.tensor([[1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0]])
    w = weighting.threshold_weights(losses, torch.tensor([1.5, 10.0]), torch.tensor([3.5, 11.0]))
    torch.testing.assert_close(w, torch.tensor([[0.0, 0.5, 0.5, 0.0], [0.0, 0.0, 0.0, 0.0]]))
    c = weighting.reweight_weights(torch.tensor([[2.0, -1.0, 6.0], [-1.0, -2.0, 0.0]]))
    torch.testing.assert_close(c, torch.tensor([[0.25, 0.0, 0.75], [0.0, 0.0, 0.0]]))


FAMILIES = {"clean": SinusoidFamily(), "mixed": SinusoidFamily(easy_rate=0.3, noisy_rate=0.2, outlier_rate=0.1)}
TINY = sweep.SweepConfig(meta_batch=6, iterations=3, val_tasks=20, val_batch=5, test_tasks=10, hidden=8)


def test_a_members_training_does_not_depend_on_the_others():
    alone = [sweep.Member("a", "mixed", 1, sweep.Rule("rank", m=1, k=5))]
    others = [sweep.Member("b", "clean", 0, sweep.Rule("sg_val")),
              sweep.Member("c", "mixed", 1, sweep.Rule("reweight")),
              sweep.Member("d", "mixed", 2, sweep.Rule("sg_batch")),
              sweep.Member("e", "clean", 1, sweep.Rule("sg_range", lower=0.0, upper=1.0))]
    p_alone, _ = sweep.train(alone, FAMILIES, TINY)
    p_all, info = sweep.train(others[:2] + alone + others[2:], FAMILIES, TINY)
    for name in p_alone:
        torch.testing.assert_close(p_all[name][2], p_alone[name][0], rtol=1e-5, atol=1e-6)
    assert len(info["selection"]) == 5 and info["selection"][2]["kept_clean"] is not None
    model = sweep.member_model(p_all, 2, TINY.hidden)  # a member loads into the project's MLP
    assert sum(p.numel() for p in model.parameters()) == 8 + 8 + 64 + 8 + 8 + 1


def test_rules_take_their_constants_by_keyword_and_are_checked():
    with pytest.raises(TypeError):
        sweep.Rule("sg_val", 2.0, 1.0)  # positional constants were once silently read as m and k
    with pytest.raises(ValueError, match="quantiles"):
        sweep.Rule("sg_range", lower=2.0, upper=1.0)
    with pytest.raises(ValueError, match="0 <= m < k"):
        sweep.Rule("rank", m=5, k=5)


def test_a_non_finite_task_loss_stops_training(monkeypatch):
    real = sweep.post_adaptation_losses

    def poisoned(*args, **kwargs):
        losses, start = real(*args, **kwargs)
        return losses * torch.tensor(float("nan")), start

    monkeypatch.setattr(sweep, "post_adaptation_losses", poisoned)
    with pytest.raises(sweep.NonFiniteError, match="meta-iteration 1"):
        sweep.train([sweep.Member("a", "clean", 0)], FAMILIES, TINY)


def test_evaluation_lowers_the_mse_with_adaptation_steps():
    _, params = _stacked(2, hidden=8)
    tasks = sweep.fixed_tasks(30, 3, TINY)
    out = lockstep.adapted_task_mse({n: p.detach() for n, p in params.items()}, tasks, [0, 5], inner_lr=0.01)
    assert out[0].shape == (2, 30) and bool((out[5].mean(1) < out[0].mean(1)).all())
    assert math.isfinite(float(out[5].mean()))


def test_reproduce_smoke_writes_every_table(tmp_path):
    from hetrom import reproduce

    report = reproduce.main(["--smoke", "--quiet", "--seeds", "0", "1", "--settings", "clean", "easy",
                             "--out", str(tmp_path)])
    tables = report["tables"]
    assert set(tables) == {"clean", "easy", "summary", "grid"}
    methods = [row[0] for row in tables["easy"]["rows"]]
    assert methods[0] == reproduce.MAML and reproduce.CLEAN_REF in methods and reproduce.REWEIGHT in methods
    assert len(tables["grid"]["rows"]) == 1 + len(reproduce.GRID)
    assert report["threads"] == 1 and report["seeds"] == [0, 1]
    assert (tmp_path / "sinusoid.json").is_file() and (tmp_path / "sinusoid_vs_maml.png").is_file()
    hetrom_row = next(r for r in tables["easy"]["rows"] if r[0] == reproduce.HETROM)
    assert hetrom_row[1].startswith("m=")  # the chosen ranked range is reported


def test_reproduce_fewshot_smoke(tmp_path):
    from hetrom import reproduce

    report = reproduce.main(["--experiment", "fewshot", "--smoke", "--quiet", "--seeds", "0", "--out", str(tmp_path)])
    rows = report["tables"]["contaminated"]["rows"]
    assert [r[0] for r in rows][0] == "MAML" and all(0.0 <= r[1] <= 1.0 for r in rows)
