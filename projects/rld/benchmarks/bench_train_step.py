"""Training-step throughput (samples/s) of every method on CPU, and of the losses alone.

    OMP_NUM_THREADS=1 uv run benchmarks/bench_train_step.py [--steps 200]

Prints figures; never asserts. Two settings: the offline default (MLP 64-32-10 student, batch 128, cached
teacher logits) and the paper's CIFAR-100 pair (ResNet8x4 student, ResNet32x4 teacher forward, batch 64;
few steps, as it is slow on CPU).
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from rld.config import METHODS, Config
from rld.engine import make_optimizer, objective
from rld.models import build_model


def bench(cfg: Config, student, teacher_fn, x, y, steps: int) -> float:
    optimizer = make_optimizer(cfg, student)
    for i in range(steps + 3):
        if i == 3:
            start = time.perf_counter()
        with torch.no_grad():
            t = teacher_fn(x)
        loss = objective(cfg, student(x), t, y, epoch=30)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(student.parameters(), cfg.grad_clip)
        optimizer.step()
    return steps * len(y) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--cifar-steps", type=int, default=3)
    args = parser.parse_args()
    if os.environ.get("OMP_NUM_THREADS", "").isdigit():
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    x, y = torch.rand(128, 1, 8, 8), torch.randint(0, 10, (128,))
    cached = torch.randn(128, 10) * 5
    print("digits MLP 64-32-10, batch 128, grad clip 2 (samples/s):")
    for method in METHODS:
        cfg = Config(method=method, grad_clip=2.0)
        torch.manual_seed(0)
        print(f"  {method:>4}: {bench(cfg, build_model('mlp_student', 10), lambda _: cached, x, y, args.steps):9.0f}")
    print("losses alone, B=128, C=100 (calls/s):")
    zs, zt, t = torch.randn(128, 100, requires_grad=True), torch.randn(128, 100), torch.randint(0, 100, (128,))
    for method in METHODS:
        cfg = Config(method=method)
        start = time.perf_counter()
        for _ in range(args.steps):
            objective(cfg, zs, zt, t, 30).backward()
        print(f"  {method:>4}: {args.steps / (time.perf_counter() - start):9.0f}")
    if args.cifar_steps:
        print(f"CIFAR-100 resnet32x4 -> resnet8x4, batch 64, {args.cifar_steps} steps (samples/s):")
        xc, yc = torch.randn(64, 3, 32, 32), torch.randint(0, 100, (64,))
        teacher = build_model("resnet32x4", 100).eval()
        for method in ("kd", "dkd", "rld"):
            torch.manual_seed(0)
            rate = bench(Config(method=method), build_model("resnet8x4", 100), teacher, xc, yc, args.cifar_steps)
            print(f"  {method:>4}: {rate:9.1f}")


if __name__ == "__main__":
    main()
