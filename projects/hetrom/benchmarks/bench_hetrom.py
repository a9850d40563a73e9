"""Timing of the task generators and of one meta-iteration (prints figures, asserts nothing).

    OMP_NUM_THREADS=1 uv run benchmarks/bench_hetrom.py
"""

from __future__ import annotations

import os
import time

import numpy as np
import torch

from hetrom.data import FewShotTasks, GlyphClasses, to_tensors
from hetrom.lockstep import post_adaptation_losses
from hetrom.maml import cross_entropy_loss, mse_loss, parameters_of, task_losses
from hetrom.model import ConvNet, SinusoidMLP
from hetrom.objective import ranked_range_mean
from hetrom.population import population_task_losses, stack_models
from shared.data.glyphs import GlyphAlphabet
from shared.data.sinusoid import SinusoidFamily, sample_tasks


def timed(fn, repeats: int) -> float:
    fn()  # warm-up (the first torch.func call imports torch._dynamo)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
    rng = np.random.default_rng(0)
    family = SinusoidFamily(noisy_rate=0.2, outlier_rate=0.1)
    print(f"threads: {torch.get_num_threads()}")
    batch_ms = 1e3 * timed(lambda: sample_tasks(rng, 25, family=family), 200)
    print(f"sinusoid meta-batch (25 tasks x 20 points): {batch_ms:.2f} ms")
    alphabet = GlyphAlphabet(1000)
    ids = np.arange(100)
    print(f"glyphs, 100 images 28x28: {1e3 * timed(lambda: alphabet.sample(ids, rng), 20):.1f} ms")
    tasks = FewShotTasks(GlyphClasses(alphabet, 0, 800, 14), 5, 1, 5, noisy_rate=0.2, outlier_rate=0.1)
    print(f"few-shot meta-batch (10 tasks, 5-way 1-shot 5-query, 14x14): "
          f"{1e3 * timed(lambda: tasks.sample(rng, 10), 20):.1f} ms")

    model = SinusoidMLP()
    batch = to_tensors(sample_tasks(rng, 25, family=family))
    for first_order in (False, True):
        def step():
            losses = task_losses(model, parameters_of(model), batch, mse_loss, 1, 0.01, first_order)
            ranked_range_mean(losses, 8, 25).backward()
        print(f"sinusoid meta-iteration (25 tasks, 1 inner step, {'first' if first_order else 'second'} order): "
              f"{1e3 * timed(step, 50):.1f} ms")
    # many sinusoid learners at once: torch.func vmap-of-vmap (hetrom.population) vs written-out (hetrom.lockstep)
    members = 40
    template, stacked = stack_models([SinusoidMLP() for _ in range(members)])
    many = to_tensors({k: np.stack([v] * members) for k, v in sample_tasks(rng, 25, family=family).items()
                       if k in ("x_support", "y_support", "x_query", "y_query")})

    def func_step():
        population_task_losses(template, stacked, many, mse_loss, 1, 0.01).sum().backward()

    def lockstep_step():
        post_adaptation_losses(stacked, many, 1, 0.01)[0].sum().backward()

    t_func, t_lock = timed(func_step, 5), timed(lockstep_step, 5)
    print(f"{members} sinusoid learners, one second-order meta-iteration each: torch.func {1e3 * t_func:.0f} ms, "
          f"lockstep {1e3 * t_lock:.0f} ms (ratio lockstep/torch.func {t_lock / t_func:.2f})")
    net = ConvNet(1, 5, 16, 3, 14)
    fs = to_tensors(tasks.sample(rng, 10))
    for first_order in (False, True):
        def conv_step():
            losses = task_losses(net, parameters_of(net), fs, cross_entropy_loss, 1, 0.4, first_order)
            ranked_range_mean(losses, 3, 10).backward()
        print(f"few-shot meta-iteration (10 tasks, ConvNet 3x16, {'first' if first_order else 'second'} order): "
              f"{1e3 * timed(conv_step, 5):.0f} ms")


if __name__ == "__main__":
    main()
