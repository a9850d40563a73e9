"""Throughput of one training step per method and image tower (batch 32, 64 px), and of the exact marginal inference.

    uv run benchmarks/bench_sjedd_step.py
Prints figures; asserts nothing.
"""

from __future__ import annotations

import time

import torch

from sjedd import training as train
from sjedd.autolambda import AutoLambda
from sjedd.config import Config
from sjedd.graph import marginals


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    f = torch.randn(4096, 10)
    print(f"marginals over 251 legal states: {4096 / timed(lambda: marginals(f), 5):,.0f} samples/s")
    cfg = Config(lr=1e-3, face_size=64)
    images, labels = torch.rand(cfg.batch_size, 3, 64, 64), torch.zeros(cfg.batch_size, 10)
    labels[::2] = torch.tensor([1, 0, 1, 1, 1, 1, 1, 1, 1, 1.0])
    for tower, method in [(t, m) for t in ("cnn", "clip") for m in ("binary", "fixed", "sjedd")]:
        cfg.method, cfg.image_tower = method, tower
        model = train.build_model(cfg)
        optim = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        autol = AutoLambda(model, lambda m, b: train.batch_losses(m, b, method)) if method == "sjedd" else None

        def step():
            if autol is not None:
                autol.step((images, labels), (images, labels), alpha=cfg.lr, model_optim=optim)
            loss = train.batch_losses(model, (images, labels), method).sum()
            optim.zero_grad()
            loss.backward()
            optim.step()

        seconds = timed(step, 5)
        print(f"{tower:>4} {method:>6}: {seconds * 1000:7.1f} ms/step, {cfg.batch_size / seconds:7.1f} samples/s "
              f"(batch {cfg.batch_size})")


if __name__ == "__main__":
    main()
