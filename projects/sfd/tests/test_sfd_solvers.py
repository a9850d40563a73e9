"""Solvers and schedules against hand computations and the closed-form Gaussian ODE."""

import math

import pytest
import torch

from sfd.solvers import (
    SOLVERS,
    afs_direction,
    dpmpp_orders,
    dpmpp_sampler,
    dynamic_threshold,
    euler_sampler,
    gaussian_denoiser,
    gaussian_ode_solution,
    nfe,
    num_steps_for_nfe,
    polynomial_schedule,
    sample,
    teacher_schedule,
)

SD = 0.5


def test_polynomial_schedule_matches_eq5_by_hand():
    t = polynomial_schedule(4, 0.006, 80.0, 7.0)
    assert t.dtype == torch.float64 and t.shape == (4,)
    hi, lo = 80.0 ** (1 / 7), 0.006 ** (1 / 7)
    expected = [(hi + i / 3 * (lo - hi)) ** 7 for i in range(4)]
    assert t.tolist() == pytest.approx(expected, rel=1e-12)
    assert t[0].item() == pytest.approx(80.0) and t[-1].item() == pytest.approx(0.006)
    assert bool((t[1:] < t[:-1]).all())


@pytest.mark.parametrize("num_steps,M", [(3, 3), (4, 3), (7, 3), (5, 1), (6, 5)])
def test_teacher_schedule_is_nested_exactly(num_steps, M):
    student, teacher = polynomial_schedule(num_steps), teacher_schedule(num_steps, M)
    assert len(teacher) == (M + 1) * (num_steps - 1) + 1
    assert torch.equal(teacher[:: M + 1], student)  # bit for bit


def test_dpmpp_order_rule_official():
    assert dpmpp_orders(3) == [1, 2]
    assert dpmpp_orders(4) == [1, 2, 1]
    assert dpmpp_orders(5) == [1, 2, 2, 1]
    assert dpmpp_orders(6) == [1, 2, 3, 2, 1]
    assert dpmpp_orders(13) == [1, 2] + [3] * 8 + [2, 1]
    assert dpmpp_orders(6, lower_order_final=False) == [1, 2, 3, 3, 3]


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("afs", [False, True])
def test_nfe_accounting_counts_network_calls(solver, afs):
    calls = []

    def denoise(x, t):
        calls.append(float(t))
        return gaussian_denoiser(SD)(x, t)

    t_steps = polynomial_schedule(5)
    sample(solver, denoise, torch.randn(3, 2, dtype=torch.float64) * 80, t_steps, afs=afs)
    assert len(calls) == nfe(solver, 5, afs)
    if afs:
        assert 80.0 not in calls  # the first direction is analytical


def test_nfe_inverse():
    assert num_steps_for_nfe("euler", 2, afs=True) == 4  # the official 2-NFE setting
    assert nfe("euler", 4, True) == 2 and nfe("euler", 4, False) == 3
    assert nfe("heun", num_steps_for_nfe("heun", 4, False), False) == 4
    with pytest.raises(ValueError, match="not reachable"):
        num_steps_for_nfe("heun", 3, afs=False)


def test_afs_equals_gaussian_closed_form_direction():
    x = torch.randn(10, 4, dtype=torch.float64)
    t = torch.tensor(80.0, dtype=torch.float64)
    assert torch.allclose(afs_direction(x, t), x / math.sqrt(1 + 80.0**2))
    # for unit-variance Gaussian data the true ODE direction (x − D)/t = x·t/(1 + t²) differs by < 1e-4 relative
    exact = (x - gaussian_denoiser(1.0)(x, t)) / t
    assert torch.allclose(afs_direction(x, t), exact, rtol=1e-4)


def test_euler_step_by_hand():
    x = torch.tensor([[2.0, -1.0]], dtype=torch.float64)
    t = torch.tensor([4.0, 1.0], dtype=torch.float64)
    out = euler_sampler(gaussian_denoiser(1.0), x, t)
    # D = x/(1+16) ; d = (x − D)/4 = x·16/68 ; x' = x − 3d
    assert torch.allclose(out, x * (1 - 3 * 16 / 68))
    out_afs = euler_sampler(gaussian_denoiser(1.0), x, t, afs=True)
    assert torch.allclose(out_afs, x * (1 - 3 / math.sqrt(17)))


def test_dpmpp_second_order_step_by_hand():
    """N = 3: a first-order step then one 2M step; compare with the formulas written out by hand."""
    x = torch.tensor([[1.5]], dtype=torch.float64)
    t = torch.tensor([3.0, 1.0, 0.5], dtype=torch.float64)
    D = gaussian_denoiser(1.0)
    lam = [-math.log(v) for v in t.tolist()]
    x0_a = x / (1 + 9)
    h0 = lam[1] - lam[0]
    x1 = (1 / 3) * x - math.expm1(-h0) * x0_a
    x0_b = x1 / (1 + 1)
    h1 = lam[2] - lam[1]
    r0 = h0 / h1
    d1 = (x0_b - x0_a) / r0
    x2 = (0.5 / 1) * x1 - math.expm1(-h1) * x0_b - 0.5 * math.expm1(-h1) * d1
    traj = dpmpp_sampler(D, x, t, return_trajectory=True)
    assert torch.allclose(traj[1], x1) and torch.allclose(traj[2], x2)


def _final_error(solver, n):
    x = torch.randn(256, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 80
    t = polynomial_schedule(n)
    out = sample(solver, gaussian_denoiser(SD), x, t)
    return float((out - gaussian_ode_solution(x, 80.0, float(t[-1]), SD)).abs().max())


@pytest.mark.parametrize("solver,lo,hi", [("euler", 1.8, 2.2), ("heun", 3.5, 4.5), ("dpm2", 3.5, 4.5),
                                          ("ipndm", 3.5, 4.5), ("dpmpp", 3.3, 8.5)])
def test_solvers_converge_to_closed_form_with_expected_order(solver, lo, hi):
    e1, e2 = _final_error(solver, 81), _final_error(solver, 161)
    assert e2 < e1
    assert lo < e1 / e2 < hi  # halving the step: error ÷ 2 (first order), ÷ 4 (second order) or more
    if solver != "euler":
        assert e2 < 2e-3


def test_dynamic_thresholding():
    x0 = torch.rand(4, 1, 8, 8) * 2 - 1
    assert torch.equal(dynamic_threshold(x0), x0)  # inside [-1, 1]: a no-op
    big = torch.full((1, 200), 3.0)
    big[0, 0] = -5.0
    s = torch.quantile(big.abs(), 0.995, dim=1)  # ≈ 3.0..5.0; the clamp then rescales by s
    out = dynamic_threshold(big)
    assert torch.allclose(out, big.clamp(-s, s) / s)
    assert out.abs().max() <= 1.0 + 1e-6


def test_dpmpp_thresholding_breaks_non_image_data():
    """The official always-on thresholding rescales x0 of data with values above 1: off by default here."""
    x = torch.randn(256, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 80
    t = polynomial_schedule(41)
    exact = gaussian_ode_solution(x, 80.0, float(t[-1]), 3.0)
    off = dpmpp_sampler(gaussian_denoiser(3.0), x, t)
    on = dpmpp_sampler(gaussian_denoiser(3.0), x, t, thresholding=True)
    assert (off - exact).abs().max() < 1e-2 < (on - exact).abs().max()


def test_bad_inputs():
    with pytest.raises(ValueError, match="at least 2"):
        polynomial_schedule(1)
    with pytest.raises(ValueError, match="sigma_min"):
        polynomial_schedule(4, sigma_min=100.0)
    with pytest.raises(ValueError, match="unknown solver"):
        sample("rk45", gaussian_denoiser(1.0), torch.zeros(1, 2), polynomial_schedule(3))
