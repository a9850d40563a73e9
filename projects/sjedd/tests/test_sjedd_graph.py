"""The label hierarchy: legal states against a brute-force enumeration, and exact marginal inference."""

import itertools

import numpy as np
import pytest
import torch

from sjedd.graph import legal_states, log_marginals, marginals
from sjedd.labels import LABEL_MAP_FFSO, LABEL_MAP_SOFF

# The hierarchy written independently of sjedd.graph: each node's parents, and each global node's children.
PARENTS = {1: [0], 2: [0], 3: [0], 4: [2, 3], 5: [2], 6: [1, 2, 3], 7: [1, 2, 3], 8: [2, 3], 9: [2]}
CHILDREN = {1: [6, 7], 2: [4, 5, 6, 7, 8, 9], 3: [4, 6, 7, 8]}


def brute_force_legal() -> set[tuple[int, ...]]:
    legal = set()
    for s in itertools.product((0, 1), repeat=10):
        ok = all(not s[n] or any(s[p] for p in ps) for n, ps in PARENTS.items())
        ok &= all(not s[g] or any(s[c] for c in cs) for g, cs in CHILDREN.items())
        if ok:
            legal.add(s)
    return legal


def test_legal_states_match_brute_force():
    states = legal_states()
    assert states.shape == (251, 10)
    as_set = {tuple(int(v) for v in row) for row in states}
    assert as_set == brute_force_legal()
    assert len(as_set) == 251  # no duplicates


def test_every_label_vector_is_legal():
    legal = brute_force_legal()
    for name, vector in {**LABEL_MAP_SOFF, **LABEL_MAP_FFSO}.items():
        assert vector in legal, name


def brute_force_marginals(f: np.ndarray) -> np.ndarray:
    states = np.array(sorted(brute_force_legal()), dtype=np.float64)
    weights = np.exp(states @ f)
    return (weights[:, None] * states).sum(0) / weights.sum()


def test_marginals_match_brute_force_softmax():
    rng = np.random.default_rng(0)
    f = rng.normal(0, 2, (5, 10))
    ours = marginals(torch.tensor(f)).numpy()
    expected = np.stack([brute_force_marginals(row) for row in f])
    np.testing.assert_allclose(ours, expected, rtol=1e-10, atol=1e-12)


def test_marginals_stable_and_ordered_by_hierarchy():
    f = torch.randn(64, 10, dtype=torch.float64) * 400  # far beyond exp's range
    p = marginals(f)
    assert torch.isfinite(p).all() and (p >= 0).all() and (p <= 1).all()
    f = torch.randn(256, 10, dtype=torch.float64) * 3
    p = marginals(f)
    for child, parent in [(1, 0), (2, 0), (3, 0), (5, 2), (9, 2)]:  # single-parent nodes
        assert (p[:, child] <= p[:, parent] + 1e-12).all()
    # multi-parent local nodes: P(child) <= P(any parent on)
    states = legal_states().double()
    w = torch.softmax(f @ states.T, dim=1)
    for child, parents in PARENTS.items():
        any_parent = (states[:, parents].sum(1) > 0).double()
        assert (p[:, child] <= w @ any_parent + 1e-12).all()


def test_gradients_flow_and_bad_shape():
    f = torch.zeros(2, 10, requires_grad=True)
    log_marginals(f)[:, 0].sum().backward()
    assert f.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r"\(batch, 10\)"):
        marginals(torch.zeros(2, 9))
