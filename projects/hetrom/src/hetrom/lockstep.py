"""Hundreds of sinusoid meta-learners meta-trained in lockstep with plain batched tensor ops (reproduce.py's engine).

The MAML sinusoid MLP (1-40-40-1, ReLU; Finn et al., 2017, Sec. 5.1) is written out as batched matrix
products over a leading ``(members, tasks)`` block, so one meta-iteration of every member is a handful of
``matmul`` calls instead of a ``vmap`` of a ``vmap``. The parameters are stored in ``nn.Linear``'s layout
(``weight`` is ``(out, in)``) under the names of :class:`hetrom.model.SinusoidMLP`, so a member's slice loads
into that module unchanged (tested against :mod:`hetrom.maml` and :mod:`hetrom.population`).

Per member and meta-iteration (MAML Eq. 1 inner step, then the member's outer objective):

    w_i = phi - alpha * grad L_i^support(phi)                     (second order unless first_order)
    l_i = L_i^query(w_i)                                          (post-adaptation task loss)
    phi <- Adam(phi, sum_i c_i * grad_phi l_i)                    (c: the member's task weights, no gradient)

The task weights ``c`` (see :mod:`hetrom.weighting`) give MAML (uniform), HeTRoM's ranked range, CVaR-MAML,
the sg threshold rules and the task-level learning-to-reweight baseline. Adam acts element-wise, so one Adam
over the stacked parameters performs exactly each member's own Adam step.
"""

from __future__ import annotations

import torch

Params = dict[str, torch.Tensor]
LAYERS = ("net.0", "net.2", "net.4")  # the nn.Linear layers of hetrom.model.SinusoidMLP


def _linear(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``h @ w.T + b`` with ``h (P, T, N, in)`` and ``w (P, T or 1, out, in)``.

    When the weights are shared by the tasks (task dim 1) the tasks are folded into one matrix product per
    member; the 1-wide input and output layers are broadcast products instead of matrix products.
    """
    p, t, n, d_in = h.shape
    if d_in == 1:
        out = h * w.squeeze(-1).unsqueeze(-2)
    elif w.shape[-2] == 1:
        out = (h * w).sum(-1, keepdim=True)
    elif w.shape[1] == 1 and t > 1:
        out = (h.reshape(p, t * n, d_in) @ w[:, 0].transpose(-1, -2)).reshape(p, t, n, -1)
    else:
        out = h @ w.transpose(-1, -2)
    return out + b.unsqueeze(-2)


def mlp_forward(params: Params, x: torch.Tensor) -> torch.Tensor:
    """The MLP on ``x (P, T, N, 1)``; parameters are ``(P, T, ...)`` per task or ``(P, 1, ...)`` shared."""
    h = x
    for i, layer in enumerate(LAYERS):
        h = _linear(h, params[f"{layer}.weight"], params[f"{layer}.bias"])
        if i < len(LAYERS) - 1:
            h = torch.relu(h)
    return h


def task_mse(params: Params, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-task mean squared error, ``(P, T)``."""
    return ((mlp_forward(params, x) - y) ** 2).mean(dim=(-2, -1))


def task_gradients(params: Params, x: torch.Tensor, y: torch.Tensor) -> Params:
    """Each task's gradient of its own MSE, ``(P, T, ...)``, by backpropagation written out (differentiable).

    Equals ``torch.autograd.grad`` of the per-task losses w.r.t. per-task copies (tested), but the layers whose
    weights the tasks share stay folded matrix products, which is what makes the lockstep sweep fast.
    Layer ``l``: ``z_l = h_{l-1} W_l^T + b_l``, ``h_l = relu(z_l)``; with ``d_3 = 2 (z_3 - y) / N``,
    ``d_l = (d_{l+1} W_{l+1}) * 1[z_l > 0]``, ``grad W_l = d_l^T h_{l-1}`` and ``grad b_l = sum_n d_l``.
    """
    hs, zs, h = [x], [], x
    for i, layer in enumerate(LAYERS):
        z = _linear(h, params[f"{layer}.weight"], params[f"{layer}.bias"])
        zs.append(z)
        h = torch.relu(z) if i < len(LAYERS) - 1 else z
        hs.append(h)
    delta = 2.0 * (zs[-1] - y) / y.shape[-2]
    grads: Params = {}
    for i in reversed(range(len(LAYERS))):
        layer, h_in = LAYERS[i], hs[i]
        grads[f"{layer}.weight"] = delta.transpose(-1, -2) @ h_in if h_in.shape[-1] > 1 and delta.shape[-1] > 1 \
            else (delta.unsqueeze(-1) * h_in.unsqueeze(-2)).sum(-3)
        grads[f"{layer}.bias"] = delta.sum(-2)
        if i > 0:
            w = params[f"{layer}.weight"]
            if w.shape[-2] == 1:  # output layer: d_{l+1} is 1-wide
                back = delta * w.squeeze(-2).unsqueeze(-2)
            elif w.shape[1] == 1 and delta.shape[1] > 1:
                p, t, n, d_out = delta.shape
                back = (delta.reshape(p, t * n, d_out) @ w[:, 0]).reshape(p, t, n, -1)
            else:
                back = delta @ w
            delta = back * (zs[i - 1] > 0).to(back.dtype)
    return grads


def expand_to_tasks(params: Params, n_tasks: int) -> Params:
    """One copy of each member's parameters per task: ``(P, ...)`` -> ``(P, T, ...)`` (a view, no copy)."""
    return {name: p.unsqueeze(1).expand(p.shape[0], n_tasks, *p.shape[1:]) for name, p in params.items()}


def adapt(params: Params, x: torch.Tensor, y: torch.Tensor, steps: int, inner_lr: float) -> Params:
    """``steps`` inner SGD steps on every task's support set at once (MAML Eq. 1), ``params`` ``(P, 1|T, ...)``.

    Differentiable w.r.t. ``params`` (second order); detach the result for first-order MAML or evaluation.
    """
    for _ in range(steps):
        grads = task_gradients(params, x, y)
        params = {name: p - inner_lr * grads[name] for name, p in params.items()}
    return params


def post_adaptation_losses(params: Params, batch: dict[str, torch.Tensor], steps: int, inner_lr: float,
                           first_order: bool = False, per_task: bool = False) -> tuple[torch.Tensor, Params]:
    """The query loss ``l_i(phi)`` of every task of every member, ``(P, T)``, and the parameters it was computed
    from: ``(P, 1, ...)`` shared views of ``params`` or, with ``per_task``, ``(P, T, ...)`` copies whose
    gradient is each task's own meta-gradient (learning to reweight needs those).

    ``batch`` tensors are ``(P, T, points, 1)``.
    """
    n_tasks = batch["x_support"].shape[1]
    start = expand_to_tasks(params, n_tasks if per_task else 1)
    adapted = adapt(start, batch["x_support"], batch["y_support"], steps, inner_lr)
    if first_order:  # FOMAML: the adapted weights depend on phi only through the identity
        adapted = {name: start[name] + (a - start[name]).detach() for name, a in adapted.items()}
    return task_mse(adapted, batch["x_query"], batch["y_query"]), start


def adapted_task_mse(params: Params, tasks: dict[str, torch.Tensor], steps: list[int], inner_lr: float,
                     target: str = "f_query", member_chunk: int = 50) -> dict[int, torch.Tensor]:
    """Evaluation: per-task MSE after each number of steps in ``steps``, ``{s: (P, n_tasks)}``.

    ``tasks`` holds ``(n_tasks, points, 1)`` tensors shared by all members; the MSE is taken against
    ``target`` (the noise-free ``f_query`` for the clean test tasks). Members are processed in chunks to
    bound memory.
    """
    n_members = next(iter(params.values())).shape[0]
    out: dict[int, list[torch.Tensor]] = {s: [] for s in steps}
    with torch.no_grad():
        for start in range(0, n_members, member_chunk):
            current = {name: p[start:start + member_chunk].detach().unsqueeze(1) for name, p in params.items()}
            size = next(iter(current.values())).shape[0]
            data = {k: v.unsqueeze(0).expand(size, *v.shape) for k, v in tasks.items() if v.ndim == 3}
            done = 0
            for s in sorted(steps):
                current = adapt(current, data["x_support"], data["y_support"], s - done, inner_lr)
                done = s
                out[s].append(task_mse(current, data["x_query"], data[target]))
    return {s: torch.cat(v) for s, v in out.items()}
