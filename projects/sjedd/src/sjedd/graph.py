"""The hierarchical label graph and exact probabilistic inference over its legal states (Sec. III-C).

The ten nodes form a HEX-style hierarchy without exclusion edges (official ``SO_Graph.py``):
``fake -> {expression, identity, physical}``, ``expression -> {lip, mouth}``,
``identity -> {eye, eyebrow, lip, mouth, nose, skin}``, ``physical -> {eye, lip, mouth, nose}``.
A binary state s in {0,1}^10 is *legal* unless

* a global node is on while ``fake`` is off, or a global node is on while all its children are off;
* a local node is on while all its parents are off.

This leaves 251 of the 1024 states. With the ten similarity logits f, P(s) is proportional to exp(s . f) over
legal states, and each node's marginal is p_i = sum_{legal s, s_i = 1} exp(s . f) / Z (computed in float64
with log-sum-exp, then cast back, as the official code does in double precision).
"""

from __future__ import annotations

from functools import cache

import torch

from sjedd.labels import GLOBAL_NODES, LOCAL_NODES

HIERARCHY: dict[int, tuple[int, ...]] = {
    0: (1, 2, 3),
    1: (6, 7),
    2: (4, 5, 6, 7, 8, 9),
    3: (4, 6, 7, 8),
}
"""Parent node -> child nodes (the hierarchy edges E_h)."""


def parents(node: int) -> tuple[int, ...]:
    """The parents of ``node`` in :data:`HIERARCHY`."""
    return tuple(p for p, children in HIERARCHY.items() if node in children)


@cache
def _legal_states() -> torch.Tensor:
    states = (torch.arange(1024)[:, None] >> torch.arange(9, -1, -1)[None, :]) & 1  # MSB = node 0
    legal = torch.ones(1024, dtype=torch.bool)
    for g in GLOBAL_NODES:
        on = states[:, g] == 1
        legal &= ~(on & (states[:, 0] == 0))
        legal &= ~(on & (states[:, list(HIERARCHY[g])].sum(1) == 0))
    for node in LOCAL_NODES:
        legal &= ~((states[:, node] == 1) & (states[:, list(parents(node))].sum(1) == 0))
    return states[legal].to(torch.float32)


def legal_states() -> torch.Tensor:
    """(251, 10) 0/1 float tensor of the legal label states, in increasing binary order (node 0 most significant)."""
    return _legal_states().clone()


def log_marginals(logits: torch.Tensor) -> torch.Tensor:
    """log p_i for every node: (B, 10) logits -> (B, 10) log-marginals (float64 inside, logits' dtype out)."""
    if logits.ndim != 2 or logits.shape[1] != 10:
        raise ValueError(f"logits must be (batch, 10) similarity scores, got shape {tuple(logits.shape)}")
    states = _legal_states().to(device=logits.device, dtype=torch.float64)
    scores = logits.double() @ states.T                                    # (B, S): s . f
    log_z = torch.logsumexp(scores, dim=1, keepdim=True)                   # (B, 1)
    log_on = torch.log(states)                                             # 0 where s_i = 1, -inf where s_i = 0
    log_num = torch.logsumexp(scores[:, :, None] + log_on[None], dim=1)    # (B, 10)
    return (log_num - log_z).to(logits.dtype)


def marginals(logits: torch.Tensor) -> torch.Tensor:
    """Marginal probability of each node being on: (B, 10) logits -> (B, 10) values in [0, 1]."""
    return log_marginals(logits).exp().clamp(0.0, 1.0)
