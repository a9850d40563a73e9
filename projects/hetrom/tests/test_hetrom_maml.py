"""The bi-level computation: inner adaptation, MAML equivalence, per-task gradients, model blocks."""

import pytest
import torch

from hetrom.maml import adapt, cross_entropy_loss, mse_loss, parameters_of, task_losses
from hetrom.model import ConvNet, SinusoidMLP
from hetrom.objective import ranked_range_mask, ranked_range_mean


def _batch(n=9, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 20, 1, generator=g) * 10 - 5
    amp = torch.rand(n, 1, 1, generator=g) * 5
    y = amp * torch.sin(x) + torch.randn(n, 20, 1, generator=g) * (torch.arange(n) % 3 == 0).view(n, 1, 1) * 3
    return {"x_support": x[:, :10], "y_support": y[:, :10], "x_query": x[:, 10:], "y_query": y[:, 10:]}


def _model(seed=0):
    torch.manual_seed(seed)
    return SinusoidMLP(hidden=16)


def test_one_inner_step_is_sgd_on_the_support_loss():
    model, batch = _model(), _batch()
    params = parameters_of(model)
    adapted = adapt(model, params, batch["x_support"][0], batch["y_support"][0], mse_loss, 1, 0.1)
    loss = mse_loss(model(batch["x_support"][0]), batch["y_support"][0])
    grads = torch.autograd.grad(loss, list(params.values()))
    for (name, p), g in zip(params.items(), grads):
        torch.testing.assert_close(adapted[name], p - 0.1 * g)


@pytest.mark.parametrize("first_order", [False, True])
def test_m0_kn_is_exactly_the_maml_loss_and_gradient(first_order):
    model, batch = _model(), _batch()
    losses = task_losses(model, parameters_of(model), batch, mse_loss, 2, 0.01, first_order)
    hetrom = ranked_range_mean(losses, 0, len(losses))
    maml = losses.mean()
    torch.testing.assert_close(hetrom, maml, rtol=1e-7, atol=0)
    g_h = torch.autograd.grad(hetrom, list(model.parameters()), retain_graph=True)
    g_m = torch.autograd.grad(maml, list(model.parameters()))
    for a, b in zip(g_h, g_m):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_vmapped_task_losses_match_a_loop_over_tasks_with_plain_autograd():
    model, batch = _model(1), _batch(5, seed=1)
    losses = task_losses(model, parameters_of(model), batch, mse_loss, 1, 0.05)
    for i in range(5):  # independent computation: torch.autograd with create_graph, one task at a time
        params = list(model.parameters())
        loss_s = mse_loss(torch.func.functional_call(model, dict(zip(dict(model.named_parameters()), params)),
                                                     (batch["x_support"][i],)), batch["y_support"][i])
        grads = torch.autograd.grad(loss_s, params, create_graph=True)
        fast = {n: p - 0.05 * g for (n, p), g in zip(model.named_parameters(), grads)}
        loss_q = mse_loss(torch.func.functional_call(model, fast, (batch["x_query"][i],)), batch["y_query"][i])
        torch.testing.assert_close(losses[i], loss_q)


def test_gradient_of_the_selected_mean_is_the_mean_of_selected_per_task_gradients():
    model, batch = _model(2), _batch(12, seed=2)
    params = parameters_of(model)
    losses = task_losses(model, params, batch, mse_loss, 1, 0.01)
    m, k = 3, 10
    mask = ranked_range_mask(losses, m, k)
    total = torch.autograd.grad(ranked_range_mean(losses, m, k), list(params.values()))
    per_task = []
    for i in torch.nonzero(mask).flatten().tolist():  # each kept task on its own, second order
        one = {key: value[i:i + 1] for key, value in batch.items()}
        li = task_losses(model, params, one, mse_loss, 1, 0.01)[0]
        per_task.append(torch.autograd.grad(li, list(params.values())))
    for j, g in enumerate(total):
        torch.testing.assert_close(g, torch.stack([pt[j] for pt in per_task]).mean(0), rtol=1e-5, atol=1e-6)


def test_first_order_gradient_is_the_query_gradient_at_the_adapted_parameters():
    model, batch = _model(3), _batch(1, seed=3)
    params = parameters_of(model)
    loss = task_losses(model, params, batch, mse_loss, 1, 0.1, first_order=True)[0]
    g_fo = torch.autograd.grad(loss, list(params.values()))
    adapted = {k: v.detach().requires_grad_(True) for k, v in
               adapt(model, params, batch["x_support"][0], batch["y_support"][0], mse_loss, 1, 0.1).items()}
    q = mse_loss(torch.func.functional_call(model, adapted, (batch["x_query"][0],)), batch["y_query"][0])
    g_ref = torch.autograd.grad(q, list(adapted.values()))
    for a, b in zip(g_fo, g_ref):
        torch.testing.assert_close(a, b)
    g_so = torch.autograd.grad(task_losses(model, params, batch, mse_loss, 1, 0.1)[0], list(params.values()))
    assert any(not torch.allclose(a, b) for a, b in zip(g_so, g_fo))  # second order really differs


def test_model_shapes_and_bad_inputs():
    assert SinusoidMLP()(torch.zeros(3, 7, 1)).shape == (3, 7, 1)
    net = ConvNet(1, 5, hidden=8, blocks=3, image_size=14)
    assert net(torch.zeros(4, 1, 14, 14)).shape == (4, 5)
    with pytest.raises(ValueError, match="expects inputs"):
        SinusoidMLP()(torch.zeros(3, 2))
    with pytest.raises(ValueError, match="expects images"):
        net(torch.zeros(4, 3, 14, 14))
    with pytest.raises(ValueError, match="too small"):
        ConvNet(1, 5, 8, blocks=4, image_size=8)


def test_strided_convnet_is_mamls_omniglot_net():
    net = ConvNet(1, 5, hidden=64, blocks=4, image_size=28, downsample="stride")
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in net.modules())
    assert all(c.stride == (2, 2) for c in net.modules() if isinstance(c, torch.nn.Conv2d))
    assert net.head.in_features == 64 * 2 * 2  # 28 -> 14 -> 7 -> 4 -> 2
    assert net(torch.zeros(3, 1, 28, 28)).shape == (3, 5)
    pooled = ConvNet(1, 5, hidden=64, blocks=4, image_size=28)
    assert pooled.head.in_features == 64 * 1 * 1  # 28 -> 14 -> 7 -> 3 -> 1
    with pytest.raises(ValueError, match="downsample"):
        ConvNet(downsample="avg")


def test_classification_task_losses_under_vmap_with_batch_statistics():
    torch.manual_seed(0)
    net = ConvNet(1, 3, hidden=4, blocks=2, image_size=8)
    batch = {"x_support": torch.rand(2, 3, 1, 8, 8), "y_support": torch.tensor([[0, 1, 2]] * 2),
             "x_query": torch.rand(2, 6, 1, 8, 8), "y_query": torch.tensor([[0, 1, 2, 0, 1, 2]] * 2)}
    losses = task_losses(net, parameters_of(net), batch, cross_entropy_loss, 1, 0.4)
    assert losses.shape == (2,) and torch.isfinite(losses).all()
    loop = [task_losses(net, parameters_of(net), {k: v[i:i + 1] for k, v in batch.items()}, cross_entropy_loss,
                        1, 0.4)[0] for i in range(2)]
    torch.testing.assert_close(losses, torch.stack(loop))
