"""Time one training step and one single-volume forward pass of every model at the CPU config's sizes.

    uv run benchmarks/bench_models.py            # 32^3 volumes, batch 8, configs/cpu.yaml widths
Prints, never asserts. Respects OMP_NUM_THREADS.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from nlran.config import Config
from nlran.engine import build_model, count_parameters, latency_per_volume
from shared.runs.cli import apply_overrides, load_config_file

ARCHS = ("nlran", "nlran_no_nonlocal", "nlran_no_attention", "resnet3d", "cbam3d", "covnet")


def main(steps: int = 3) -> None:
    if os.environ.get("OMP_NUM_THREADS"):
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    cfg = apply_overrides(Config(), load_config_file(Path(__file__).resolve().parents[1] / "configs" / "cpu.yaml"))
    x = torch.rand(cfg.batch_size, 1, *cfg.volume_size)
    y = torch.arange(cfg.batch_size) % 3
    device = torch.device("cpu")
    for arch in ARCHS:
        torch.manual_seed(0)
        model = build_model(apply_overrides(cfg, {"arch": arch}))
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        times = []
        for i in range(steps + 1):
            start = time.perf_counter()
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if i:
                times.append(time.perf_counter() - start)
        lat = latency_per_volume(model, tuple(cfg.volume_size), device, runs=5)
        print(f"{arch:20s} {count_parameters(model):>9,} params  train step (batch {cfg.batch_size}) "
              f"{sum(times) / len(times) * 1000:7.0f} ms  inference {lat['median_ms']:6.1f} ms/volume")


if __name__ == "__main__":
    main()
