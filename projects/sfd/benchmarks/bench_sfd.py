"""Time the data generator, one EDM teacher step, one teacher trajectory and one SFD iteration (prints only).

    OMP_NUM_THREADS=1 uv run benchmarks/bench_sfd.py
"""

from __future__ import annotations

import os
import time

import torch

from sfd.config import Config, build_denoiser
from sfd.data import data_shape, training_data
from sfd.distill import sfd_iteration, teacher_trajectory
from sfd.losses import edm_loss
from shared.data.toy2d import ring_gaussians


def timed(fn, repeat: int = 5) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


def main() -> None:
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
    print(f"threads: {torch.get_num_threads()}")
    print(f"ring_gaussians(100k): {timed(lambda: ring_gaussians(100_000)) * 1e3:.1f} ms")
    for dataset, width, batch in (("toy2d", 256, 256), ("digits", 256, 128)):
        cfg = Config(dataset=dataset, width=width, sigma_data=1.0 if dataset == "toy2d" else 0.5,
                     thresholding=dataset != "toy2d")
        teacher = build_denoiser(cfg).eval().requires_grad_(False)
        student = build_denoiser(cfg)
        data = training_data(dataset)
        net = build_denoiser(cfg)
        opt_t = torch.optim.Adam(net.parameters(), 1e-3)

        def teacher_step():
            loss = edm_loss(net, data[torch.randint(len(data), (256,))])
            opt_t.zero_grad()
            loss.backward()
            opt_t.step()

        x_T = torch.randn(batch, *data_shape(dataset)) * 80
        opt = torch.optim.Adam(student.parameters(), 5e-5)
        traj = teacher_trajectory(teacher, x_T, 4, 3, cfg.schedule, thresholding=cfg.thresholding)
        t_traj = timed(lambda: teacher_trajectory(teacher, x_T, 4, 3, cfg.schedule, thresholding=cfg.thresholding))
        t_sfd = timed(lambda: sfd_iteration(student, opt, traj, cfg.schedule.student(4)))
        print(f"{dataset}: EDM teacher step (batch 256) {timed(teacher_step) * 1e3:.0f} ms; "
              f"teacher trajectory (DPM++(3M), K=4, 12 NFE, batch {batch}) {t_traj * 1e3:.0f} ms; "
              f"SFD student updates (2 steps) {t_sfd * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
