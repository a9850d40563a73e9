"""The SFD training iteration: nesting, per-step optimiser updates, global vs local inputs, loss, lr drop."""

import copy

import pytest
import torch

from sfd.distill import Schedule, lr_at, sfd_iteration, student_sample, teacher_trajectory, trajectory_loss
from sfd.losses import edm_loss
from sfd.networks import EDMPrecond, MLPNet
from sfd.solvers import dpmpp_sampler, euler_sampler, gaussian_denoiser

SCHED = Schedule()


class CountingOptimizer(torch.optim.SGD):
    def __init__(self, params, lr):
        super().__init__(params, lr=lr)
        self.steps = 0

    def step(self, closure=None):
        self.steps += 1
        return super().step(closure)


def _nets(seed=0):
    torch.manual_seed(seed)
    teacher = EDMPrecond(MLPNet(2, 32, 2), 1.0)
    for p in teacher.parameters():
        p.data.add_(0.05 * torch.randn_like(p))
    return teacher.eval().requires_grad_(False), copy.deepcopy(teacher).requires_grad_(True)


def test_teacher_trajectory_lands_on_student_timestamps():
    x_T = torch.randn(8, 2, dtype=torch.float64) * 80
    D = gaussian_denoiser(1.0)

    class Gauss(torch.nn.Module):
        def forward(self, x, t):
            return D(x, t)

    traj = teacher_trajectory(Gauss(), x_T, 4, 3, SCHED)
    assert len(traj) == 4
    full = dpmpp_sampler(D, x_T, SCHED.teacher(4, 3), return_trajectory=True)
    for j in range(4):
        assert torch.equal(traj[j], full[4 * j])


def test_student_at_init_reproduces_teacher_euler_bit_for_bit():
    teacher, student = _nets()
    x_T = torch.randn(16, 2) * 80
    t = SCHED.student(4)
    expected = euler_sampler(lambda x, s: teacher(x, s), x_T, t.float(), afs=True)
    assert torch.equal(student_sample(student, x_T, 4, SCHED, afs=True), expected)


@pytest.mark.parametrize("afs,updates", [(True, 2), (False, 3)])
def test_one_optimiser_step_per_student_step_with_a_network_call(afs, updates):
    teacher, student = _nets()
    traj = teacher_trajectory(teacher, torch.randn(16, 2) * 80, 4, 3, SCHED)
    opt = CountingOptimizer(student.parameters(), lr=1e-3)
    losses = sfd_iteration(student, opt, traj, SCHED.student(4), afs=afs)
    assert opt.steps == updates and len(losses) == updates


def test_global_view_feeds_student_outputs_local_feeds_teacher_states():
    teacher, student = _nets()
    traj = teacher_trajectory(teacher, torch.randn(4, 2) * 80, 4, 3, SCHED)
    seen = []
    hook = student.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().clone()))
    sfd_iteration(student, torch.optim.SGD(student.parameters(), lr=0.0), traj, SCHED.student(4), afs=True,
                  global_view=False)
    assert torch.equal(seen[0], traj[1]) and torch.equal(seen[1], traj[2])
    seen.clear()
    sfd_iteration(student, torch.optim.SGD(student.parameters(), lr=0.0), traj, SCHED.student(4), afs=True)
    t = SCHED.student(4).float()
    x1 = traj[0] + (t[1] - t[0]) * traj[0] / torch.sqrt(1 + t[0] ** 2)  # AFS state, not the teacher's
    assert torch.allclose(seen[0], x1) and not torch.allclose(seen[0], traj[1])
    hook.remove()


def test_one_sfd_iteration_decreases_the_loss_on_a_fixed_batch():
    teacher, student = _nets()
    torch.manual_seed(1)
    traj = teacher_trajectory(teacher, torch.randn(64, 2) * 80, 4, 3, SCHED)  # DPM++(3M), K = 4: ≠ student Euler

    def trajectory_l1():  # the SFD losses of the whole student trajectory, parameters left unchanged (lr = 0)
        return sum(sfd_iteration(student, torch.optim.SGD(student.parameters(), lr=0.0), traj, SCHED.student(4)))

    before = trajectory_l1()
    assert before > 0
    sfd_iteration(student, torch.optim.Adam(student.parameters(), lr=1e-3), traj, SCHED.student(4))
    assert trajectory_l1() < before


def test_trajectory_loss_by_hand():
    a = torch.tensor([[1.0, -2.0], [0.0, 0.5]])
    b = torch.zeros(2, 2)
    assert trajectory_loss(a, b, "l1").item() == pytest.approx((1 + 2 + 0 + 0.5) / 2)
    assert trajectory_loss(a, b, "l2").item() == pytest.approx((1 + 4 + 0 + 0.25) / 2)
    with pytest.raises(ValueError, match="unknown loss"):
        trajectory_loss(a, b, "huber")


def test_lr_drops_by_ten_exactly_at_half():
    assert [lr_at(i, 10, 1.0) for i in range(10)] == [1.0] * 5 + [0.1] * 5
    assert lr_at(4, 9, 1.0) == 1.0 and lr_at(5, 9, 1.0) == 0.1


def test_edm_loss_is_zero_for_a_perfect_denoiser_of_a_point_mass():
    class Perfect(torch.nn.Module):
        sigma_data = 0.5

        def forward(self, x, sigma):
            return torch.zeros_like(x)

    assert edm_loss(Perfect(), torch.zeros(8, 2)).item() == 0.0
    teacher, _ = _nets()
    assert edm_loss(teacher, torch.randn(8, 2)).item() > 0
