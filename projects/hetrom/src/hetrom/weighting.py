"""Task weights of a meta-batch, batched over many meta-learners: HeTRoM, sg rules, CVaR-MAML, reweighting.

Every outer objective compared in ``reproduce.py`` is ``sum_i c_i * l_i(phi)`` with weights ``c`` that carry no
gradient (``l_i``: post-adaptation query loss of task ``i``). Inputs are ``(P, T)``: ``P`` meta-learners
(members) with ``T`` tasks each; per-member constants are ``(P,)`` tensors.

* MAML (Finn et al., 2017, Eq. 3): ``c_i = 1/T``.
* HeTRoM (arXiv 2410.18894; AoRR of Hu et al., NeurIPS 2020, Eq. 2): ``c_i = 1/(k-m)`` on the tasks of
  descending rank ``m+1..k``, 0 elsewhere -- :func:`ranked_range_weights`.
* CVaR-MAML (DR-MAML; Wang et al., NeurIPS 2023, arXiv 2310.00708, Definition 3 and the two-stage strategy):
  CVaR_alpha of the task risks = the mean of the tasks at or above the empirical alpha-quantile (VaR_alpha)
  of the meta-batch, i.e. the top ``ceil((1-alpha) T)`` losses -- :func:`cvar_k`, then the ranked range with
  ``m = 0``. (Per meta-batch this is exactly the average top-k.)
* sg rules: keep the tasks with ``lo <= l_i <= hi`` and average them -- :func:`threshold_weights`, with the
  thresholds from the meta-batch's own (log) losses (:func:`batch_thresholds`, our earlier guess) or from the
  losses of held-out validation tasks (:func:`validation_thresholds`, as AoRR's official code does:
  ``mean + 1 std`` / ``mean - 2 std`` of the validation losses).
* Task-level learning to reweight (Ren et al., ICML 2018, Sec. 3: one-step look-ahead weights, clipped at
  0 and normalised; applied to tasks as in
  NestedMAML, Killamsetty et al., AAAI 2022): ``c_i ∝ max(<grad l_i, grad L_val>, 0)``, normalised to sum
  to 1 -- :func:`reweight_weights`.
"""

from __future__ import annotations

import math

import torch


def _check(losses: torch.Tensor) -> None:
    if losses.ndim != 2 or losses.numel() == 0:
        raise ValueError(f"task losses must be (members, tasks), got shape {tuple(losses.shape)}")


def descending_ranks(losses: torch.Tensor) -> torch.Tensor:
    """0-based rank of every task in its member's descending sort (ties broken by task index)."""
    _check(losses)
    order = torch.sort(losses.detach(), dim=1, descending=True, stable=True).indices
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(losses.shape[1], device=losses.device).expand_as(order))
    return ranks


def ranked_range_weights(losses: torch.Tensor, m: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """HeTRoM: weight ``1/(k-m)`` on descending ranks ``m+1..k`` (1-based), 0 elsewhere; ``(P, T)``.

    ``m = 0, k = T`` is MAML's mean; ``m = 0, k < T`` the average top-k (= CVaR-MAML); ``k = T`` a trimmed mean.
    """
    _check(losses)
    n = losses.shape[1]
    if bool(((m < 0) | (k <= m) | (k > n)).any()):
        raise ValueError(f"the ranked range needs 0 <= m < k <= {n} for every member, got m={m.tolist()}, "
                         f"k={k.tolist()}")
    r = descending_ranks(losses)
    keep = (r >= m[:, None]) & (r < k[:, None])
    return keep.to(losses.dtype) / (k - m)[:, None].to(losses.dtype)


def cvar_k(alpha: float, n_tasks: int) -> int:
    """Tasks kept by CVaR_alpha on a meta-batch of ``n_tasks``: those at or above the alpha-quantile."""
    if not 0.0 <= alpha < 1.0:
        raise ValueError(f"CVaR needs 0 <= alpha < 1, got {alpha}")
    return max(1, math.ceil((1.0 - alpha) * n_tasks - 1e-9))


def threshold_weights(losses: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """The mean over the tasks with ``lo <= l_i <= hi`` (per member); a member keeping no task gets all zeros
    (no outer gradient from that meta-batch, as in AoRR's code where the hinge terms are then all zero)."""
    _check(losses)
    l = losses.detach()
    keep = ((l >= lo[:, None]) & (l <= hi[:, None])).to(losses.dtype)
    return keep / keep.sum(1, keepdim=True).clamp_min(1.0)


def _mean_std(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return values.mean(1), values.std(1, unbiased=False)  # numpy's np.std (ddof=0), as in AoRR's code


def batch_thresholds(losses: torch.Tensor, lower: torch.Tensor | float = 2.0, upper: torch.Tensor | float = 1.0,
                     log_space: bool = True,
                     eps: float = 1e-12) -> tuple[torch.Tensor, torch.Tensor]:
    """sg thresholds from the meta-batch itself: ``exp(mu -/+ c s)`` of the log losses (or raw ``mu -/+ c s``).

    Our earlier reading of sg-HeTRoM (log-normal task losses, AoRR's constants 2 and 1). ``lower`` and
    ``upper`` are floats or per-member ``(P,)`` tensors.
    """
    _check(losses)
    values = losses.detach().clamp_min(eps).log() if log_space else losses.detach()
    mu, s = _mean_std(values)
    lo, hi = mu - lower * s, mu + upper * s
    return (lo.exp(), hi.exp()) if log_space else (lo, hi)


def validation_thresholds(val_losses: torch.Tensor, lower: torch.Tensor | float = 2.0,
                          upper: torch.Tensor | float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """AoRR's statistical thresholds, from the losses of held-out validation tasks at the current parameters.

    SoRR repository, ``AoRR_multiclass/logisticregression_AoRR_DC_train_val.py`` (commit 710d498):
    ``loss_val_m = mean(loss_val) + 1 * std(loss_val)`` (the upper cut, lambda_m) and
    ``loss_val_k = mean(loss_val) - 2 * std(loss_val)`` (the lower cut, lambda_k), on raw losses, recomputed
    as training proceeds. Returns ``(lo, hi) = (mean - lower * std, mean + upper * std)`` per member.
    """
    _check(val_losses)
    mu, s = _mean_std(val_losses.detach())
    return mu - lower * s, mu + upper * s


def _quantile_per_row(values: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Row ``p``'s ``q[p]``-quantile (linear interpolation, as ``torch.quantile``'s default)."""
    v = torch.sort(values, dim=1).values
    pos = q.to(v.dtype).clamp(0, 1) * (v.shape[1] - 1)
    below = pos.floor().long()
    above = (below + 1).clamp_max(v.shape[1] - 1)
    frac = pos - below.to(v.dtype)
    return torch.lerp(v.gather(1, below[:, None])[:, 0], v.gather(1, above[:, None])[:, 0], frac)


def validation_range_thresholds(val_losses: torch.Tensor, lower_q: torch.Tensor | float = 0.0,
                                upper_q: torch.Tensor | float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Our variant: keep the training tasks whose loss lies within the quantiles ``[lower_q, upper_q]`` of the
    validation-task losses (``0, 1``: the range of losses that clean validation tasks actually reach)."""
    _check(val_losses)
    v = val_losses.detach()
    n = v.shape[0]
    lower_q, upper_q = (torch.as_tensor(q, dtype=v.dtype).expand(n) for q in (lower_q, upper_q))
    return _quantile_per_row(v, lower_q), _quantile_per_row(v, upper_q)


def reweight_weights(alignment: torch.Tensor) -> torch.Tensor:
    """Learning to reweight (Ren et al., 2018, Sec. 3) at task level: ``c_i = max(a_i, 0) / sum_j max(a_j, 0)``
    with ``a_i = <grad_phi l_i, grad_phi L_val>``; all-zero weights when no task aligns (no update)."""
    _check(alignment)
    c = alignment.detach().clamp_min(0.0)
    total = c.sum(1, keepdim=True)
    return torch.where(total > 0, c / total.clamp_min(1e-30), torch.zeros_like(c))
