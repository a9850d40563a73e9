"""SFD: trajectory distillation at the sampling timestamps (official ``training/loss.py``, ``training_loop.py``).

One SFD iteration (paper Sec. 4 / Alg. 1):
1. draw x_T = σ_max·z (noise only, no data);
2. run the teacher (DPM-Solver++(3M), K = M + 1 steps per student interval, no AFS) on the nested schedule and
   keep its states at the student timestamps (no gradients);
3. for i = 0..N − 2: one student Euler step from the student's own detached previous output (the "global"
   view), loss L_i = ‖x^S_{t_{i+1}} − x^T_{t_{i+1}}‖₁ / B, backward and an optimiser step *after every student
   step*. With AFS the first step is analytical: no network call, no loss, no optimiser step.
SFD-v draws the number of timestamps per iteration and feeds it to the network as a condition.
The 1-NFE second stage uses a trained SFD model as the teacher (Euler, AFS) and may add an LPIPS term at the
final step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from sfd.solvers import afs_direction, polynomial_schedule, sample, teacher_schedule
from shared.runs import guard_finite


@dataclass(frozen=True)
class Schedule:
    """Time-schedule settings shared by teacher and student."""

    sigma_min: float = 0.006
    sigma_max: float = 80.0
    rho: float = 7.0

    def student(self, num_steps: int) -> torch.Tensor:
        return polynomial_schedule(num_steps, self.sigma_min, self.sigma_max, self.rho)

    def teacher(self, num_steps: int, M: int) -> torch.Tensor:
        return teacher_schedule(num_steps, M, self.sigma_min, self.sigma_max, self.rho)


def denoiser_fn(net: torch.nn.Module, num_steps: int | None = None) -> Callable:
    """``net`` as a ``denoise(x, t)`` callable, passing the SFD-v step condition when the net takes one."""
    if getattr(net, "step_condition", False):
        return lambda x, t: net(x, t, num_steps)
    return lambda x, t: net(x, t)


@torch.no_grad()
def teacher_trajectory(teacher: torch.nn.Module, x_T: torch.Tensor, num_steps: int, M: int, schedule: Schedule,
                       solver: str = "dpmpp", afs: bool = False, **solver_kwargs) -> list[torch.Tensor]:
    """The teacher's states at the ``num_steps`` student timestamps (every (M + 1)-th state of its run)."""
    t_tea = schedule.teacher(num_steps, M)
    return sample(solver, denoiser_fn(teacher, num_steps), x_T, t_tea, afs=afs, return_trajectory=True, stride=M + 1,
                  **solver_kwargs)


def trajectory_loss(student_out: torch.Tensor, teacher_out: torch.Tensor, metric: str = "l1") -> torch.Tensor:
    """L1 (SFD): Σ|x^S − x^T| / B; L2 (ablation): Σ(x^S − x^T)² / B."""
    diff = student_out - teacher_out
    if metric == "l1":
        return diff.abs().sum() / diff.shape[0]
    if metric == "l2":
        return diff.square().sum() / diff.shape[0]
    raise ValueError(f"unknown loss metric {metric!r}; expected 'l1' or 'l2'")


def euler_step(net: torch.nn.Module, x: torch.Tensor, t_cur: torch.Tensor, t_next: torch.Tensor,
               num_steps: int | None = None) -> torch.Tensor:
    """Student update x_{i+1} = x_i + (t_{i+1} − t_i)·(x_i − D_θ(x_i, t_i))/t_i."""
    d = (x - denoiser_fn(net, num_steps)(x, t_cur)) / t_cur
    return x + (t_next - t_cur) * d


def sfd_iteration(student: torch.nn.Module, optimizer: torch.optim.Optimizer, teacher_traj: list[torch.Tensor],
                  t_steps: torch.Tensor, *, afs: bool = True, metric: str = "l1", global_view: bool = True,
                  perceptual: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                  perceptual_weight: float = 1.0, iteration: int | None = None) -> list[float]:
    """One SFD iteration over one batch of teacher trajectories; returns the loss of each student step.

    ``global_view`` (SFD) feeds step i + 1 with the student's own detached output; ``False`` (the "local"
    ablation) feeds it with the teacher's state. ``perceptual`` (second stage) adds
    ``perceptual_weight·perceptual(x^S, x^T)`` at the last step. A non-finite loss stops training
    (``shared.runs.guard_finite``: ``DivergenceError`` naming ``iteration`` and the student step) before any
    update; non-finite gradients of a finite loss are zeroed as in the official code.
    """
    t_steps = t_steps.to(device=teacher_traj[0].device, dtype=teacher_traj[0].dtype)
    num_steps = len(t_steps)
    x = teacher_traj[0]
    losses = []
    for i, (t_cur, t_next) in enumerate(zip(t_steps[:-1], t_steps[1:])):
        if i == 0 and afs:  # analytical first step: no network call, nothing to train
            x = x + (t_next - t_cur) * afs_direction(x, t_cur)
            continue
        x_in = x if global_view else teacher_traj[i]
        out = euler_step(student, x_in, t_cur, t_next, num_steps)
        loss = trajectory_loss(out, teacher_traj[i + 1], metric)
        if perceptual is not None and i == num_steps - 2:
            loss = loss + perceptual_weight * perceptual(out, teacher_traj[i + 1])
        guard_finite(f"{iteration}, student step {i}" if iteration is not None else f"student step {i}", loss=loss)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        for p in student.parameters():  # official NaN guard
            if p.grad is not None:
                torch.nan_to_num(p.grad, nan=0.0, posinf=1e5, neginf=-1e5, out=p.grad)
        optimizer.step()
        losses.append(float(loss.detach()))
        x = out.detach()
    return losses


@torch.no_grad()
def student_sample(student: torch.nn.Module, x_T: torch.Tensor, num_steps: int, schedule: Schedule,
                   afs: bool = True) -> torch.Tensor:
    """Sample with the distilled student: Euler (+ AFS) on ``num_steps`` polynomial timestamps."""
    t_steps = schedule.student(num_steps)
    return sample("euler", denoiser_fn(student, num_steps), x_T, t_steps, afs=afs)


def lr_at(iteration: int, total: int, lr: float) -> float:
    """Official schedule: lr until half of the budget is consumed, then lr / 10."""
    return lr if iteration < total / 2 else lr / 10
