"""The rank-based task-level objectives of HeTRoM (arXiv 2410.18894) and its special cases.

Notation (the AoRR convention of Hu et al., NeurIPS 2020, which HeTRoM builds on): a meta-batch has ``n``
tasks with post-adaptation (query) losses ``l_1..l_n``; ``l_[1] >= l_[2] >= ... >= l_[n]`` is their
**descending** sort. The HeTRoM objective is the average of the ranked range ``m+1..k``::

    L(phi) = 1/(k - m) * sum_{i=m+1}^{k} l_[i](phi),        0 <= m < k <= n,

which drops the ``m`` largest losses (noisy or outlier tasks) and the ``n - k`` smallest (easy tasks).
Special cases: ``m = 0, k = n`` is MAML's mean; ``m = 0, k < n`` is the average top-k (ATk);
``k = n, m > 0`` is the trimmed mean; ``k = m + 1`` is the (m+1)-th largest loss.

sg-HeTRoM replaces the fixed ranks by thresholds from the statistics of the (log) task losses
(see :func:`sg_thresholds`; the exact rule of the paper is not known to us, see the README's Deviations).
"""

from __future__ import annotations

import torch


def _check_range(n: int, m: int, k: int) -> None:
    if not (0 <= m < k <= n):
        raise ValueError(f"the ranked range needs 0 <= m < k <= n, got m={m}, k={k}, n={n}")


def _check_losses(task_losses: torch.Tensor) -> None:
    if task_losses.ndim != 1 or task_losses.numel() == 0:
        raise ValueError(f"task_losses must be a non-empty 1-D tensor (one loss per task), "
                         f"got shape {tuple(task_losses.shape)}")


def ranked_range_mask(task_losses: torch.Tensor, m: int, k: int) -> torch.Tensor:
    """The tasks whose loss rank (descending, 1-based) lies in ``m+1..k``: exactly ``k - m`` of them.

    Ties are broken by task index (a stable sort), i.e. one of the valid subgradients.
    """
    _check_losses(task_losses)
    _check_range(task_losses.numel(), m, k)
    order = torch.sort(task_losses.detach(), descending=True, stable=True).indices
    mask = torch.zeros_like(task_losses, dtype=torch.bool)
    mask[order[m:k]] = True
    return mask


def ranked_range_mean(task_losses: torch.Tensor, m: int, k: int) -> torch.Tensor:
    """HeTRoM's objective: ``1/(k - m) * sum_{i=m+1}^{k} l_[i]`` (the AoRR of the task losses).

    Its gradient is ``1/(k - m)`` times the sum of the gradients of the selected tasks only (the ranks are
    piecewise constant in ``phi``), i.e. MAML's outer gradient restricted to the ranked range.
    """
    mask = ranked_range_mask(task_losses, m, k)
    return task_losses[mask].sum() / (k - m)


def top_k_sum_dc(task_losses: torch.Tensor, k: int, lam: torch.Tensor | float) -> torch.Tensor:
    """The convex upper bound ``k * lam + sum_i [l_i - lam]_+`` of the top-k sum (AoRR, DC form).

    ``min_lam`` of it equals ``sum_{i=1}^{k} l_[i]``, attained at ``lam = l_[k]``; with ``k = 0`` it is
    ``sum_i [l_i - lam]_+``, minimised (to 0) by any ``lam >= l_[1]``.
    """
    return k * lam + torch.relu(task_losses - lam).sum()


def ranked_range_dc(task_losses: torch.Tensor, m: int, k: int) -> torch.Tensor:
    """The ranked-range average in its difference-of-convex (threshold) form (AoRR, Hu et al. 2020)::

        1/(k - m) * ( min_lam {k lam + sum_i [l_i - lam]_+} - min_lam' {m lam' + sum_i [l_i - lam']_+} )

    Each ``min`` is flat on ``[l_[k+1], l_[k]]`` (resp. ``[l_[m+1], l_[m]]``); we evaluate at the midpoints,
    treated as constants (``l_[n] - 1`` past the end, ``l_[1] + 1`` for ``m = 0``), where the hinges are
    differentiable when losses are distinct. Value and gradient then equal :func:`ranked_range_mean`'s.
    """
    _check_losses(task_losses)
    n = task_losses.numel()
    _check_range(n, m, k)
    d = torch.sort(task_losses.detach(), descending=True).values

    def threshold(r: int) -> torch.Tensor:  # a minimiser of r * lam + sum_i [l_i - lam]_+ between l_[r+1], l_[r]
        if r == 0:
            return d[0] + 1.0
        return (d[r - 1] + d[r]) / 2 if r < n else d[n - 1] - 1.0

    return (top_k_sum_dc(task_losses, k, threshold(k)) - top_k_sum_dc(task_losses, m, threshold(m))) / (k - m)


def sg_thresholds(task_losses: torch.Tensor, lower: float = 2.0, upper: float = 1.0, log_space: bool = True,
                  eps: float = 1e-12) -> tuple[torch.Tensor, torch.Tensor]:
    """sg-HeTRoM's statistical thresholds ``(lo, hi)`` on the task losses.

    With ``log_space`` (task losses modelled as log-normal): ``mu, s`` = mean and (population) standard
    deviation of ``log l_i`` over the meta-batch, ``lo = exp(mu - lower * s)``, ``hi = exp(mu + upper * s)``.
    Otherwise the same on the raw losses (AoRR's JMLR rule, ``mean + 1 std`` / ``mean - 2 std``).
    The defaults ``lower = 2, upper = 1`` follow AoRR's code; the paper's constants are not known to us.
    """
    _check_losses(task_losses)
    values = torch.log(task_losses.detach().clamp_min(eps)) if log_space else task_losses.detach()
    mu, s = values.mean(), values.std(unbiased=False)
    lo, hi = mu - lower * s, mu + upper * s
    return (lo.exp(), hi.exp()) if log_space else (lo, hi)


def sg_mask(task_losses: torch.Tensor, lower: float = 2.0, upper: float = 1.0, log_space: bool = True
            ) -> torch.Tensor:
    """The tasks kept by sg-HeTRoM: ``lo <= l_i <= hi`` (all tasks when the losses are identical)."""
    lo, hi = sg_thresholds(task_losses, lower, upper, log_space)
    if log_space:  # compare in log space so that exp/log round-off never drops a task on the boundary
        logs = torch.log(task_losses.detach().clamp_min(1e-12))
        return (logs >= lo.log() - 1e-6) & (logs <= hi.log() + 1e-6)
    return (task_losses.detach() >= lo - 1e-6) & (task_losses.detach() <= hi + 1e-6)


def selected_mean(task_losses: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The mean loss of the selected tasks, ``sum_{i in S} l_i / |S|`` (the outer objective on a selection)."""
    if mask.sum() == 0:
        raise ValueError("the task selection is empty")
    return task_losses[mask].sum() / mask.sum()


def select_tasks(task_losses: torch.Tensor, method: str, m: int = 0, k: int | None = None, sg_lower: float = 2.0,
                 sg_upper: float = 1.0, sg_log_space: bool = True) -> torch.Tensor:
    """Which tasks enter the outer objective: ranks ``m+1..k`` (``hetrom``), the statistical thresholds
    (``sg``) or all of them (``maml``); a bool mask over the meta-batch."""
    if method == "hetrom":
        return ranked_range_mask(task_losses, m, task_losses.numel() if k is None else k)
    if method == "sg":
        return sg_mask(task_losses, sg_lower, sg_upper, sg_log_space)
    if method == "maml":
        return torch.ones_like(task_losses, dtype=torch.bool)
    raise ValueError(f"unknown method {method!r}; expected 'hetrom', 'sg' or 'maml'")
