"""Meta-train many sinusoid meta-learners (members) in lockstep, each with its own task stream and weighting rule.

A member is (seed, setting, rule). Members with the same seed start from the same initialisation; members
with the same seed and setting see the same meta-batches (paired comparisons). Every ``rule`` turns the
post-adaptation losses of a meta-batch into task weights (:mod:`hetrom.weighting`); the outer gradient of a
member is ``sum_i c_i grad_phi l_i``. Validation tasks are clean tasks of the test family, disjoint from the
test tasks (own seed); the sg rules and the reweighting baseline read them during training, and
:func:`select_on_validation` picks hyper-parameters (HeTRoM's ``m, k``, CVaR's ``alpha``) on them.
"""

from __future__ import annotations

import time
from dataclasses import KW_ONLY, dataclass, field
from typing import Literal

import numpy as np
import torch

from hetrom.lockstep import Params, adapted_task_mse, post_adaptation_losses
from hetrom.model import SinusoidMLP
from hetrom.weighting import (
    batch_thresholds,
    ranked_range_weights,
    reweight_weights,
    threshold_weights,
    validation_range_thresholds,
    validation_thresholds,
)
from shared.data.sinusoid import CLEAN, EASY, NOISY, OUTLIER, SinusoidFamily, sample_tasks

HARD_AMPLITUDE = 4.0  # clean tasks with A >= 4 (the hardest 18% of the standard family) are tracked separately
RuleKind = Literal["rank", "sg_batch", "sg_val", "sg_range", "reweight"]


@dataclass(frozen=True)
class Rule:
    """How a member weights its meta-batch.

    ``rank``: ranked range ``m+1..k`` (MAML: ``m=0, k=n``; CVaR-MAML: ``m=0, k=cvar_k(alpha, n)``);
    ``sg_batch``: thresholds ``exp(mu -/+ c s)`` of the batch's log losses (``lower``, ``upper`` = c);
    ``sg_val``: AoRR's ``mean - lower*std`` / ``mean + upper*std`` of validation-task losses;
    ``sg_range``: the ``[lower, upper]`` quantiles of the validation-task losses (ours);
    ``reweight``: task-level learning to reweight against the validation meta-gradient.
    """

    kind: RuleKind = "rank"
    _: KW_ONLY
    m: int = 0
    k: int = 25
    lower: float = 2.0
    upper: float = 1.0

    def __post_init__(self) -> None:
        if self.kind == "sg_range" and not 0.0 <= self.lower <= self.upper <= 1.0:
            raise ValueError(f"sg_range needs quantiles 0 <= lower <= upper <= 1, got {self.lower}, {self.upper}")
        if self.kind == "rank" and not 0 <= self.m < self.k:
            raise ValueError(f"the ranked range needs 0 <= m < k, got m={self.m}, k={self.k}")


@dataclass(frozen=True)
class Member:
    method: str  # the label of its method in the tables (a grid point shares the label of its grid)
    setting: str
    seed: int
    rule: Rule = field(default_factory=Rule)
    tag: str = ""  # e.g. "m=4 k=25" for grid points


@dataclass
class SweepConfig:
    """The MAML sinusoid recipe (Finn et al., 2017, Sec. 5.1) at CPU scale."""

    meta_batch: int = 25
    n_support: int = 10
    n_query: int = 10
    inner_steps: int = 1
    inner_lr: float = 0.01
    outer_lr: float = 1e-3
    first_order: bool = False
    iterations: int = 1000
    hidden: int = 40
    val_tasks: int = 500  # fixed clean validation tasks (model selection)
    val_batch: int = 32  # validation tasks per meta-iteration read by the sg_val / sg_range / reweight rules
    val_seed: int = 54321
    test_tasks: int = 1000
    test_seed: int = 12345
    eval_steps: tuple[int, ...] = (1, 10)


def fixed_tasks(n: int, seed: int, cfg: SweepConfig) -> dict[str, torch.Tensor]:
    """Clean tasks of the standard family (validation or test), as tensors ``(n, points, 1)``."""
    t = sample_tasks(np.random.default_rng(seed), n, cfg.n_support, cfg.n_query, SinusoidFamily())
    return {k: torch.as_tensor(t[k]) for k in ("x_support", "y_support", "x_query", "y_query", "f_query")}


def init_params(members: list[Member], hidden: int) -> Params:
    """Stacked initial parameters; a member's slice is ``SinusoidMLP(hidden)`` built after ``manual_seed(seed)``."""
    cache: dict[int, dict[str, torch.Tensor]] = {}
    for mem in members:
        if mem.seed not in cache:
            torch.manual_seed(mem.seed)
            cache[mem.seed] = {n: p.detach().clone() for n, p in SinusoidMLP(hidden).named_parameters()}
    names = list(next(iter(cache.values())))
    return {n: torch.stack([cache[mem.seed][n] for mem in members]).requires_grad_(True) for n in names}


def member_model(params: Params, index: int, hidden: int) -> SinusoidMLP:
    """Member ``index`` as a :class:`SinusoidMLP` (for checkpoints, figures and cross-checks)."""
    model = SinusoidMLP(hidden)
    model.load_state_dict({n: p[index].detach().clone() for n, p in params.items()})
    return model


def _val_losses(params: Params, idx: torch.Tensor, val: dict[str, torch.Tensor], picks: torch.Tensor,
                cfg: SweepConfig, graph: bool) -> tuple[torch.Tensor, Params]:
    """Post-adaptation query losses of members ``idx`` on validation tasks ``picks`` (``(len(idx), V)``)."""
    sub = {n: p[idx] for n, p in params.items()}
    data = {k: v[picks] for k, v in val.items()}
    with torch.set_grad_enabled(graph):
        losses, _ = post_adaptation_losses(sub, data, cfg.inner_steps, cfg.inner_lr, cfg.first_order)
    return losses, sub


class NonFiniteError(RuntimeError):
    """A meta-learner produced a non-finite loss or gradient (the run stops before anything is saved)."""


def train(members: list[Member], families: dict[str, SinusoidFamily], cfg: SweepConfig,
          progress=lambda it, **kw: it, log=lambda message: None) -> tuple[Params, dict]:
    """Meta-train every member for ``cfg.iterations`` in lockstep; returns the stacked parameters and, per
    member, the share of each contaminating task kind kept by its rule (second half of training)."""
    n, P = cfg.meta_batch, len(members)
    params = init_params(members, cfg.hidden)
    optimizer = torch.optim.Adam(params.values(), lr=cfg.outer_lr)
    streams = sorted({(mem.seed, mem.setting) for mem in members})
    stream_of = torch.tensor([streams.index((mem.seed, mem.setting)) for mem in members])
    settings = sorted(families)
    rngs = [np.random.default_rng([seed, settings.index(s)]) for seed, s in streams]
    val_rngs = [np.random.default_rng([seed, settings.index(s), 1]) for seed, s in streams]
    val = fixed_tasks(cfg.val_tasks, cfg.val_seed, cfg)
    kinds = ("rank", "sg_batch", "sg_val", "sg_range", "reweight")
    groups = {kind: torch.tensor([i for i, mem in enumerate(members) if mem.rule.kind == kind], dtype=torch.long)
              for kind in kinds}
    const = {name: torch.tensor([getattr(mem.rule, name) for mem in members]) for name in ("m", "k", "lower", "upper")}
    for name in ("m", "k"):
        const[name] = const[name].long()
    needs_val = torch.cat([groups["sg_val"], groups["sg_range"]])
    kept = {kind: np.zeros(P) for kind in ("clean", "hard_clean", "noisy", "outlier", "easy")}
    seen = {kind: np.zeros(P) for kind in kept}
    empty = np.zeros(P)
    t0 = time.time()

    for it in progress(range(cfg.iterations), desc="meta-train"):
        raw = [sample_tasks(rng, n, cfg.n_support, cfg.n_query, families[s]) for rng, (_, s) in zip(rngs, streams)]
        stacked = {k: torch.as_tensor(np.stack([r[k] for r in raw]))[stream_of]
                   for k in ("x_support", "y_support", "x_query", "y_query")}
        task_kind = np.stack([r["kind"] for r in raw])[stream_of.numpy()]
        hard = (task_kind == CLEAN) & (np.stack([r["amplitude"] for r in raw])[stream_of.numpy()] >= HARD_AMPLITUDE)
        picks = torch.as_tensor(np.stack([r.choice(cfg.val_tasks, cfg.val_batch, replace=False)
                                          for r in val_rngs]))[stream_of]
        losses, _ = post_adaptation_losses(params, stacked, cfg.inner_steps, cfg.inner_lr, cfg.first_order)
        if not torch.isfinite(losses).all():
            bad = [members[i].method for i in torch.nonzero(~torch.isfinite(losses).all(1)).flatten().tolist()]
            raise NonFiniteError(f"non-finite task loss at meta-iteration {it + 1} (members: {bad[:5]})")
        weights = torch.zeros_like(losses)
        idx = groups["rank"]
        if len(idx):
            weights[idx] = ranked_range_weights(losses[idx], const["m"][idx], const["k"][idx])
        idx = groups["sg_batch"]
        if len(idx):
            lo, hi = batch_thresholds(losses[idx], const["lower"][idx], const["upper"][idx])
            weights[idx] = threshold_weights(losses[idx], lo, hi)
        if len(needs_val):
            v, _ = _val_losses(params, needs_val, val, picks[needs_val], cfg, graph=False)
            n_val = len(groups["sg_val"])
            for rows, kind, thresholds in ((slice(0, n_val), "sg_val", validation_thresholds),
                                           (slice(n_val, None), "sg_range", validation_range_thresholds)):
                idx = groups[kind]
                if len(idx):
                    lo, hi = thresholds(v[rows], const["lower"][idx], const["upper"][idx])
                    weights[idx] = threshold_weights(losses[idx], lo, hi)
        idx = groups["reweight"]
        if len(idx):  # task-level learning to reweight: alignment of each task's meta-gradient with the validation one
            sub = {name: p[idx] for name, p in params.items()}
            own, copies = post_adaptation_losses(sub, {k: v[idx] for k, v in stacked.items()}, cfg.inner_steps,
                                                 cfg.inner_lr, cfg.first_order, per_task=True)
            per_task = torch.autograd.grad(own.sum(), list(copies.values()))
            v, vsub = _val_losses(params, idx, val, picks[idx], cfg, graph=True)
            g_val = torch.autograd.grad(v.mean(1).sum(), list(vsub.values()))
            alignment = sum((g_task * g.unsqueeze(1)).flatten(2).sum(-1) for g_task, g in zip(per_task, g_val))
            weights[idx] = reweight_weights(alignment)
        optimizer.zero_grad(set_to_none=True)
        (weights * losses).sum().backward()
        for name, p in params.items():
            if not torch.isfinite(p.grad).all():
                raise NonFiniteError(f"non-finite outer gradient of {name} at meta-iteration {it + 1}")
        optimizer.step()
        if it >= cfg.iterations // 2:  # how the rules treat each kind of task, second half of training
            chosen = (weights > 0).numpy()
            for name, is_kind in (("clean", task_kind == CLEAN), ("hard_clean", hard), ("noisy", task_kind == NOISY),
                                  ("outlier", task_kind == OUTLIER), ("easy", task_kind == EASY)):
                kept[name] += (chosen & is_kind).sum(1)
                seen[name] += is_kind.sum(1)
            empty += ~chosen.any(1)
        if (it + 1) % max(1, cfg.iterations // 10) == 0:
            log(f"[{it + 1}/{cfg.iterations}] {time.time() - t0:.0f} s, mean task loss {losses.mean().item():.3f}")
    stats = [{f"kept_{k}": (float(kept[k][i] / seen[k][i]) if seen[k][i] else None) for k in kept}
             | {"empty_batches": int(empty[i])} for i in range(P)]
    return params, {"selection": stats}


def evaluate(params: Params, cfg: SweepConfig) -> dict[str, torch.Tensor]:
    """Per-task clean MSE of every member: ``val_1`` on the validation tasks (1 step) and ``test_s`` on the
    test tasks after each of ``cfg.eval_steps``; tensors ``(P, tasks)``."""
    val = fixed_tasks(cfg.val_tasks, cfg.val_seed, cfg)
    test = fixed_tasks(cfg.test_tasks, cfg.test_seed, cfg)
    out = {"val_1": adapted_task_mse(params, val, [1], cfg.inner_lr)[1]}
    out |= {f"test_{s}": v for s, v in adapted_task_mse(params, test, list(cfg.eval_steps), cfg.inner_lr).items()}
    return out


def select_on_validation(members: list[Member], val_mse: np.ndarray, method: str) -> dict[tuple[int, str], int]:
    """For each (seed, setting): the index of the member of ``method`` with the lowest validation MSE."""
    best: dict[tuple[int, str], int] = {}
    for i, mem in enumerate(members):
        if mem.method != method:
            continue
        key = (mem.seed, mem.setting)
        if key not in best or val_mse[i] < val_mse[best[key]]:
            best[key] = i
    return best


