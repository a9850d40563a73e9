"""The rank-based objectives of HeTRoM against hand-computed and independently computed values."""

import math

import pytest
import torch

from hetrom.objective import (
    ranked_range_dc,
    ranked_range_mask,
    ranked_range_mean,
    selected_mean,
    sg_mask,
    sg_thresholds,
    top_k_sum_dc,
)

HAND = torch.tensor([5.0, 1.0, 4.0, 2.0, 3.0])  # descending: 5 (task 0), 4 (2), 3 (4), 2 (3), 1 (1)


@pytest.mark.parametrize("m,k,expected,kept", [
    (0, 5, 3.0, [0, 1, 2, 3, 4]),       # MAML mean
    (1, 3, 3.5, [2, 4]),                # ranks 2..3: (4 + 3) / 2
    (0, 2, 4.5, [0, 2]),                # ATk: top-2 average
    (2, 5, 2.0, [1, 3, 4]),             # trimmed mean: drop 5 and 4
    (3, 4, 2.0, [3]),                   # k = m + 1: the 4th largest loss
])
def test_ranked_range_by_hand(m, k, expected, kept):
    assert ranked_range_mean(HAND, m, k).item() == pytest.approx(expected)
    assert torch.nonzero(ranked_range_mask(HAND, m, k)).flatten().tolist() == kept


def test_selection_keeps_exactly_k_minus_m_tasks_of_the_right_ranks():
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        n = int(torch.randint(2, 40, (1,), generator=gen))
        losses = torch.rand(n, generator=gen)
        m = int(torch.randint(0, n - 1, (1,), generator=gen))
        k = int(torch.randint(m + 1, n + 1, (1,), generator=gen))
        mask = ranked_range_mask(losses, m, k)
        ranks = {i: r for r, i in enumerate(sorted(range(n), key=lambda i: -losses[i].item()), start=1)}
        assert int(mask.sum()) == k - m
        assert sorted(ranks[i] for i in torch.nonzero(mask).flatten().tolist()) == list(range(m + 1, k + 1))


def test_special_cases_against_independent_formulas():
    losses = torch.rand(25, generator=torch.Generator().manual_seed(1))
    desc = sorted(losses.tolist(), reverse=True)
    assert ranked_range_mean(losses, 0, 25).item() == pytest.approx(losses.mean().item(), rel=1e-6)
    assert ranked_range_mean(losses, 0, 10).item() == pytest.approx(sum(desc[:10]) / 10, rel=1e-6)
    assert ranked_range_mean(losses, 8, 25).item() == pytest.approx(sum(desc[8:]) / 17, rel=1e-6)
    assert ranked_range_mean(losses, 6, 7).item() == pytest.approx(desc[6], rel=1e-6)


def test_gradient_flows_only_to_the_selected_tasks_with_weight_one_over_k_minus_m():
    losses = HAND.clone().requires_grad_(True)
    ranked_range_mean(losses, 1, 3).backward()
    assert losses.grad.tolist() == [0.0, 0.0, 0.5, 0.0, 0.5]


def test_dc_identity_and_its_minimiser():
    losses = torch.rand(12, generator=torch.Generator().manual_seed(2)) * 3
    desc = sorted(losses.tolist(), reverse=True)
    grid = torch.linspace(-1, 4, 20001)
    for k in (1, 4, 12):
        values = k * grid + torch.relu(losses[None, :] - grid[:, None]).sum(-1)  # the bound on a grid of lam
        assert values.min().item() == pytest.approx(sum(desc[:k]), abs=1e-3)
        assert top_k_sum_dc(losses, k, desc[k - 1]).item() == pytest.approx(sum(desc[:k]), rel=1e-6)
    a = losses.clone().requires_grad_(True)
    b = losses.clone().requires_grad_(True)
    ranked_range_dc(a, 3, 9).backward()
    ranked_range_mean(b, 3, 9).backward()
    assert ranked_range_dc(losses, 3, 9).item() == pytest.approx(ranked_range_mean(losses, 3, 9).item(), rel=1e-6)
    torch.testing.assert_close(a.grad, b.grad)


def test_sg_thresholds_on_hand_made_log_losses():
    # log losses [0, 1, 2, 3, 10]: mu = 3.2, population std = sqrt(62.8 / 5) = 3.5440; hi = mu + 1 std = 6.744
    losses = torch.exp(torch.tensor([0.0, 1.0, 2.0, 3.0, 10.0], dtype=torch.float64))
    lo, hi = sg_thresholds(losses, lower=2.0, upper=1.0)
    s = math.sqrt(62.8 / 5)
    assert math.log(hi.item()) == pytest.approx(3.2 + s, rel=1e-9)
    assert math.log(lo.item()) == pytest.approx(3.2 - 2 * s, rel=1e-9)
    assert sg_mask(losses).tolist() == [True, True, True, True, False]
    # log losses [-20, 0 x 9]: mu = -2, std = 6 -> keep [-14, 4]: the very easy task is dropped
    easy = torch.exp(torch.tensor([-20.0] + [0.0] * 9, dtype=torch.float64))
    assert sg_mask(easy).tolist() == [False] + [True] * 9
    lo, hi = sg_thresholds(easy)
    assert (math.log(lo.item()), math.log(hi.item())) == (pytest.approx(-14.0), pytest.approx(4.0))


def test_sg_keeps_everything_for_identical_losses_and_supports_raw_space():
    assert sg_mask(torch.full((7,), 0.3)).all()
    raw = torch.tensor([1.0, 2.0, 3.0, 4.0, 100.0])  # AoRR rule: mean 22, std 39.0: keep <= 61
    assert sg_mask(raw, log_space=False).tolist() == [True, True, True, True, False]


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="0 <= m < k <= n"):
        ranked_range_mean(HAND, 3, 3)
    with pytest.raises(ValueError, match="0 <= m < k <= n"):
        ranked_range_mask(HAND, 0, 6)
    with pytest.raises(ValueError, match="1-D"):
        ranked_range_mean(HAND.reshape(5, 1), 0, 2)
    with pytest.raises(ValueError, match="empty"):
        selected_mean(HAND, torch.zeros(5, dtype=torch.bool))
