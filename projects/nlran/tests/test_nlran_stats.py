"""Bootstrap intervals of the macro AUC: the batched AUC against scikit-learn's, and the interval logic."""

from __future__ import annotations

import numpy as np
import pytest

from nlran.stats import bootstrap_macro_auc, macro_auc_batch
from shared.metrics import roc_auc


def test_macro_auc_batch_matches_roc_auc_with_ties():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, size=(5, 40))
    probs = rng.dirichlet(np.ones(3), size=(5, 40)).round(1)  # rounding makes many ties
    probs /= probs.sum(2, keepdims=True)
    got = macro_auc_batch(labels, probs)
    for r in range(5):
        assert got[r] == pytest.approx(roc_auc(labels[r], probs[r], average="macro"))
    assert np.isnan(macro_auc_batch(np.zeros((1, 4), int), np.full((1, 4, 3), 1 / 3)))[0]


def test_bootstrap_intervals_contain_the_point_and_pair_the_models():
    rng = np.random.default_rng(1)
    labels = [rng.integers(0, 3, 120) for _ in range(3)]
    good = [np.eye(3)[y] * 0.6 + rng.dirichlet(np.ones(3), len(y)) * 0.4 for y in labels]
    noise = [rng.dirichlet(np.ones(3), len(y)) for y in labels]
    out = bootstrap_macro_auc(labels, {"good": good, "noise": noise, "same": good}, n_boot=300, reference="good")
    for name in out:
        assert out[name]["ci_low"] <= out[name]["mean"] <= out[name]["ci_high"]
    assert out["good"]["mean"] > 0.95 and 0.4 < out["noise"]["mean"] < 0.6
    assert out["noise"]["diff_ci_high"] < 0 and out["noise"]["p_better"] == 0.0
    assert out["same"]["diff_ci_low"] == out["same"]["diff_ci_high"] == 0.0  # paired: identical models tie
    with pytest.raises(ValueError, match="one probability array per seed"):
        bootstrap_macro_auc(labels, {"short": good[:2]})
