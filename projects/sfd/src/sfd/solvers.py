"""ODE solvers of the probability-flow ODE in the EDM (VE) form, and the SFD time schedules.

EDM form (Karras et al. 2022, Eq. 1 with s(t) = 1, σ(t) = t): x_t = x_0 + t·ε, and the probability-flow ODE is
dx/dt = (x − D(x, t)) / t for a denoiser D. Every solver here takes such a denoiser ``denoise(x, t)`` (``t`` a
0-d tensor), a descending 1-D tensor of timestamps ``t_steps`` and the initial state ``x`` at ``t_steps[0]``;
it returns the final state only, as the official solvers do by default (``return_inters=False``), or, with
``return_trajectory=True``, the states at ``t_steps[::stride]`` (a list, the first being ``x``). Keeping the
whole trajectory costs an allocation per step that is never reused (the official code keeps it only on
request too). The update arithmetic runs in place on the step's own temporaries, never on ``x`` or on a
state that was handed out, so the values are bit for bit those of the textbook out-of-place expressions.
Shapes are free: (B, D) points or (B, C, H, W) images.

NFE accounting (official ``sfd-main/solvers.py``): Euler, DPM-Solver++(3M) and iPNDM use N − 1 network calls for
N timestamps, Heun and DPM-Solver-2 use 2(N − 1); the analytical first step (AFS) saves one call.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

SOLVERS = ("euler", "heun", "dpm2", "dpmpp", "ipndm")


# ---- time schedules -----------------------------------------------------------------------------------
def polynomial_schedule(num_steps: int, sigma_min: float = 0.006, sigma_max: float = 80.0,
                        rho: float = 7.0) -> torch.Tensor:
    """EDM's polynomial (ρ) schedule (Karras et al. 2022, Eq. 5), descending, float64, ``num_steps`` timestamps.

    t_i = (σ_max^{1/ρ} + i/(N − 1)·(σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ, i = 0..N − 1.
    σ_min = 0.006 is SFD's choice (one of its "small factors"; EDM uses 0.002).
    """
    if num_steps < 2:
        raise ValueError(f"a schedule needs at least 2 timestamps, got num_steps={num_steps}")
    if not 0 < sigma_min < sigma_max:
        raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
    frac = torch.arange(num_steps, dtype=torch.float64) / (num_steps - 1)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return (hi + frac * (lo - hi)) ** rho


def teacher_schedule(num_steps: int, M: int, sigma_min: float = 0.006, sigma_max: float = 80.0,
                     rho: float = 7.0) -> torch.Tensor:
    """The refined teacher schedule: (M + 1)(N − 1) + 1 polynomial timestamps, K = M + 1 per student step.

    Nested by construction: ``teacher_schedule(N, M)[::M + 1]`` equals ``polynomial_schedule(N)`` bit for bit,
    because i/(N − 1) and i(M + 1)/((M + 1)(N − 1)) are the same correctly rounded float.
    """
    if M < 0:
        raise ValueError(f"M (intermediate teacher steps) must be >= 0, got {M}")
    return polynomial_schedule((M + 1) * (num_steps - 1) + 1, sigma_min, sigma_max, rho)


def nfe(solver: str, num_steps: int, afs: bool) -> int:
    """Network calls of one sampling run with ``num_steps`` timestamps."""
    per_step = 2 if solver in ("heun", "dpm2") else 1
    if solver not in SOLVERS:
        raise ValueError(f"unknown solver {solver!r}; expected one of {SOLVERS}")
    return per_step * (num_steps - 1) - int(afs)


def num_steps_for_nfe(solver: str, target_nfe: int, afs: bool) -> int:
    """Inverse of :func:`nfe` (for the one-call-per-step solvers): timestamps that give ``target_nfe``."""
    if solver in ("heun", "dpm2"):
        if (target_nfe + int(afs)) % 2:
            raise ValueError(f"{solver} uses 2 calls per step; NFE {target_nfe} (afs={afs}) is not reachable")
        return (target_nfe + int(afs)) // 2 + 1
    return target_nfe + int(afs) + 1


# ---- building blocks ----------------------------------------------------------------------------------
def afs_direction(x: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
    """Analytical first step (AFS): d = x / sqrt(1 + t²) replaces the first network call.

    For data concentrated at the origin relative to σ_max (σ_data ≪ t), D(x, t) ≈ x·σ_d²/(σ_d² + t²) ≈ 0, so the
    ODE direction (x − D)/t ≈ x / t ≈ x / sqrt(1 + t²); the official code uses the latter form.
    """
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    return x / torch.sqrt(1 + t**2)


def dynamic_threshold(x0: torch.Tensor, ratio: float = 0.995, max_val: float = 1.0) -> torch.Tensor:
    """Imagen dynamic thresholding of a data prediction: s = max(1, q_ratio(|x0|)), x0 ← clamp(x0, −s, s)/s.

    The official DPM-Solver++(3M) applies it to every x0 prediction (``max_val`` = 1 for images in [−1, 1]).
    It must be off for data that are not bounded by 1 (toys, the closed-form Gaussian tests).
    """
    flat = x0.reshape(x0.shape[0], -1).abs()
    s = torch.quantile(flat.float(), ratio, dim=1).to(x0.dtype)
    s = torch.clamp(s, min=max_val).reshape(-1, *([1] * (x0.ndim - 1)))
    return torch.maximum(torch.minimum(x0, s), -s) / s


def dpmpp_orders(num_steps: int, max_order: int = 3, lower_order_final: bool = True) -> list[int]:
    """Order of each DPM-Solver++ multistep update (official rule, ``lower_order_final`` at every N).

    order_i = i + 1 while i + 1 < max_order, then min(max_order, N − (i + 1)) with ``lower_order_final``.
    N = 3 → (1, 2); N = 6 → (1, 2, 3, 2, 1).
    """
    orders = []
    for i in range(num_steps - 1):
        if i + 1 < max_order:
            orders.append(i + 1)
        elif lower_order_final:
            orders.append(min(max_order, num_steps - (i + 1)))
        else:
            orders.append(max_order)
    return orders


def _direction(denoise: Denoiser, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The probability-flow ODE direction (x − D(x, t))/t, a fresh tensor."""
    return (x - denoise(x, t)).div_(t)


def _first_direction(denoise: Denoiser, x: torch.Tensor, t: torch.Tensor, afs: bool) -> torch.Tensor:
    return afs_direction(x, t) if afs else _direction(denoise, x, t)


class _Keeper:
    """Collects ``x`` at ``t_steps[::stride]`` when the trajectory is requested; otherwise keeps nothing."""

    def __init__(self, x: torch.Tensor, return_trajectory: bool, stride: int):
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        self.states = [x] if return_trajectory else None
        self.stride = stride

    def __call__(self, index: int, x: torch.Tensor) -> None:
        if self.states is not None and index % self.stride == 0:
            self.states.append(x)

    def result(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        return x if self.states is None else self.states


# ---- solvers ------------------------------------------------------------------------------------------
def euler_sampler(denoise: Denoiser, x: torch.Tensor, t_steps: torch.Tensor, afs: bool = False,
                  return_trajectory: bool = False, stride: int = 1) -> torch.Tensor | list[torch.Tensor]:
    """Euler (= DDIM in the EDM form): x_{i+1} = x_i + (t_{i+1} − t_i)·(x_i − D(x_i, t_i))/t_i; AFS at i = 0."""
    keep = _Keeper(x, return_trajectory, stride)
    for i, (t_cur, t_next) in enumerate(zip(t_steps[:-1], t_steps[1:])):
        d = _first_direction(denoise, x, t_cur, afs) if i == 0 else _direction(denoise, x, t_cur)
        x = d.mul_(t_next - t_cur).add_(x)
        keep(i + 1, x)
    return keep.result(x)


def heun_sampler(denoise: Denoiser, x: torch.Tensor, t_steps: torch.Tensor, afs: bool = False,
                 return_trajectory: bool = False, stride: int = 1) -> torch.Tensor | list[torch.Tensor]:
    """EDM's 2nd-order Heun (Karras et al. 2022, Alg. 1 without churn): Euler predictor, trapezoid corrector."""
    keep = _Keeper(x, return_trajectory, stride)
    for i, (t_cur, t_next) in enumerate(zip(t_steps[:-1], t_steps[1:])):
        d = _first_direction(denoise, x, t_cur, afs) if i == 0 else _direction(denoise, x, t_cur)
        x_pred = x + (t_next - t_cur) * d
        d_next = _direction(denoise, x_pred, t_next)
        x = d.mul_(0.5).add_(d_next.mul_(0.5)).mul_(t_next - t_cur).add_(x)
        keep(i + 1, x)
    return keep.result(x)


def dpm2_sampler(denoise: Denoiser, x: torch.Tensor, t_steps: torch.Tensor, afs: bool = False,
                 r: float = 0.5, return_trajectory: bool = False, stride: int = 1) -> torch.Tensor | list[torch.Tensor]:
    """DPM-Solver-2 in the EDM form (as in the official ``solvers.py``): an Euler half step to the geometric
    midpoint t_mid = t_next^r·t_cur^{1−r}, then x_next = x + (t_next − t_cur)·((1/2r)·d_mid + (1 − 1/2r)·d)."""
    keep = _Keeper(x, return_trajectory, stride)
    for i, (t_cur, t_next) in enumerate(zip(t_steps[:-1], t_steps[1:])):
        d = _first_direction(denoise, x, t_cur, afs) if i == 0 else _direction(denoise, x, t_cur)
        t_mid = t_next**r * t_cur ** (1 - r)
        x_mid = x + (t_mid - t_cur) * d
        d_mid = _direction(denoise, x_mid, t_mid)
        x = d_mid.mul_(1 / (2 * r)).add_(d.mul_(1 - 1 / (2 * r))).mul_(t_next - t_cur).add_(x)
        keep(i + 1, x)
    return keep.result(x)


def ipndm_sampler(denoise: Denoiser, x: torch.Tensor, t_steps: torch.Tensor, afs: bool = False,
                  max_order: int = 4, return_trajectory: bool = False,
                  stride: int = 1) -> torch.Tensor | list[torch.Tensor]:
    """Improved PNDM (Zhang & Chen 2023): Adams–Bashforth on the direction with order min(max_order, i + 1)."""
    coeffs = {1: (1.0,), 2: (3 / 2, -1 / 2), 3: (23 / 12, -16 / 12, 5 / 12), 4: (55 / 24, -59 / 24, 37 / 24, -9 / 24)}
    keep, history = _Keeper(x, return_trajectory, stride), []
    for i, (t_cur, t_next) in enumerate(zip(t_steps[:-1], t_steps[1:])):
        d = _first_direction(denoise, x, t_cur, afs) if i == 0 else _direction(denoise, x, t_cur)
        history.insert(0, d)
        order = min(max_order, i + 1)
        x = x + (t_next - t_cur) * sum(c * h for c, h in zip(coeffs[order], history[:order]))
        history = history[: max_order - 1]
        keep(i + 1, x)
    return keep.result(x)


def dpmpp_sampler(denoise: Denoiser, x: torch.Tensor, t_steps: torch.Tensor, afs: bool = False,
                  max_order: int = 3, lower_order_final: bool = True,
                  thresholding: bool = False, return_trajectory: bool = False,
                  stride: int = 1) -> torch.Tensor | list[torch.Tensor]:
    """DPM-Solver++(3M) (Lu et al. 2022, multistep data-prediction updates) in the VE form α = 1, σ = t.

    With λ = −log t, h = λ_next − λ_cur and φ₁ = expm1(−h), φ₂ = φ₁/h + 1, φ₃ = φ₂/h − 1/2:
      order 1: x' = (t_next/t_cur)·x − φ₁·D₀;
      order 2: x' = (t_next/t_cur)·x − φ₁·D₀ − ½φ₁·D1₀, D1₀ = (D₀ − D₋₁)/r₀;
      order 3: x' = (t_next/t_cur)·x − φ₁·D₀ + φ₂·D₁ − φ₃·D₂ with the two divided differences of the
               paper's Alg. (multistep_dpm_solver_third_update).
    Orders follow :func:`dpmpp_orders`. With AFS the first data prediction is x − t·x/sqrt(1 + t²).
    ``thresholding`` applies :func:`dynamic_threshold` to every x0 prediction (on in the official code, for
    images in [−1, 1]; off here by default because it breaks non-image data).
    """
    orders = dpmpp_orders(len(t_steps), max_order, lower_order_final)
    lam = -torch.log(t_steps)
    keep, x0_hist, lam_hist = _Keeper(x, return_trajectory, stride), [], []
    for i, (t_cur, t_next) in enumerate(zip(t_steps[:-1], t_steps[1:])):
        if i == 0 and afs:
            x0 = x - t_cur * afs_direction(x, t_cur)
        else:
            x0 = denoise(x, t_cur)
        if thresholding:
            x0 = dynamic_threshold(x0)
        x0_hist.insert(0, x0)
        lam_hist.insert(0, lam[i])
        order = orders[i]
        h = lam[i + 1] - lam[i]
        phi1 = torch.expm1(-h)
        x_next = (t_next / t_cur) * x - phi1 * x0_hist[0]
        if order >= 2:
            r0 = (lam_hist[0] - lam_hist[1]) / h
            d1_0 = (x0_hist[0] - x0_hist[1]) / r0
            if order == 2:
                x_next = x_next - 0.5 * phi1 * d1_0
            else:
                r1 = (lam_hist[1] - lam_hist[2]) / h
                d1_1 = (x0_hist[1] - x0_hist[2]) / r1
                d1 = d1_0 + (r0 / (r0 + r1)) * (d1_0 - d1_1)
                d2 = (d1_0 - d1_1) / (r0 + r1)
                phi2 = phi1 / h + 1
                phi3 = phi2 / h - 0.5
                x_next = x_next + phi2 * d1 - phi3 * d2
        x0_hist, lam_hist = x0_hist[: max_order - 1], lam_hist[: max_order - 1]
        x = x_next
        keep(i + 1, x)
    return keep.result(x)


def sample(solver: str, denoise: Denoiser, x: torch.Tensor, t_steps: torch.Tensor, afs: bool = False,
           **kwargs) -> torch.Tensor | list[torch.Tensor]:
    """Run the named solver (one of :data:`SOLVERS`): the final state, or the states at ``t_steps[::stride]``
    with ``return_trajectory=True, stride=...``."""
    fns = {"euler": euler_sampler, "heun": heun_sampler, "dpm2": dpm2_sampler, "dpmpp": dpmpp_sampler,
           "ipndm": ipndm_sampler}
    if solver not in fns:
        raise ValueError(f"unknown solver {solver!r}; expected one of {SOLVERS}")
    return fns[solver](denoise, x, t_steps.to(device=x.device, dtype=x.dtype), afs=afs, **kwargs)


def gaussian_denoiser(sigma_data: float) -> Denoiser:
    """The exact denoiser of N(0, σ_d² I) data: D(x, t) = x·σ_d²/(σ_d² + t²) (for tests and AFS)."""
    return lambda x, t: x * (sigma_data**2 / (sigma_data**2 + t**2))


def gaussian_ode_solution(x: torch.Tensor, t_from: float, t_to: float, sigma_data: float) -> torch.Tensor:
    """Closed-form probability-flow ODE solution for N(0, σ_d² I) data: x scales by sqrt((σ_d² + t²)) ratios."""
    return x * math.sqrt((sigma_data**2 + t_to**2) / (sigma_data**2 + t_from**2))
