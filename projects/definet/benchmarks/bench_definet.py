"""Benchmarks (prints figures, never asserts): the offline inpainting generator per method, and one training
step / one inference batch of DeFI-Net, DeFI-Net w/o REAM and the U-Net baseline at the CPU and paper sizes, on
the HRNet / plain-U-Net encoders (configs/cpu.yaml) and on the EfficientNet-Lite0 encoder (configs/cpu_lite0.yaml).

    uv run benchmarks/bench_definet.py [--threads 1] [--paper]

Times are CPU process time (``time.process_time``) per call, the minimum over repeats, so a loaded machine
inflates them less than wall time; ``--paper`` adds the paper-size model at 352 px (slow on CPU).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from definet.losses import definet_loss
from definet.model import ModelConfig, build_model, count_parameters
from shared.data import photos
from shared.data.inpainting import INPAINT_METHODS, inpainting_dataset

CPU_MODEL = dict(stem_channels=8, stage1_planes=4, channels=(8, 16, 32, 64), fpn_out=16, unet_widths=(16, 32, 64, 128))
LITE0_MODEL = dict(encoder="lite0", fpn_out=32, unet_decoder_widths=(16, 32, 64))


def best_of(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        t = time.process_time()
        fn()
        times.append(time.process_time() - t)
    return min(times)


def bench_generator(size: int = 64, n: int = 24) -> None:
    photos()  # decode the photos once, outside the timing
    print(f"offline generator, {size}x{size} crops ({n} samples per method):")
    for method in INPAINT_METHODS:
        seconds = best_of(lambda: inpainting_dataset(n, size=size, methods=[method], seed=0), repeats=2)
        print(f"  {method:11s} {1000 * seconds / n:7.2f} ms/sample")


def bench_model(name: str, cfg: ModelConfig, size: int, batch: int) -> None:
    model = build_model(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=2e-4)
    x = torch.randn(batch, 3, size, size)
    mask = (torch.rand(batch, 1, size, size) > 0.8).float()

    def step():
        edge, seg = model(x)
        loss = definet_loss(edge, seg, mask)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()

    def infer():
        with torch.no_grad():
            model(x)

    model.train()
    train_s = best_of(step)
    model.eval()
    infer_s = best_of(infer)
    print(f"  {name:18s} {count_parameters(model):>9,} params  {size:3d}px batch {batch:2d}: "
          f"train step {train_s:6.3f} s "
          f"({1000 * train_s / batch:6.1f} ms/img), inference {1000 * infer_s / batch:6.1f} ms/img")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--paper", action="store_true", help="also the paper-size model at 352 px")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    np.random.seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    bench_generator()
    print("models (configs/cpu.yaml sizes):")
    bench_model("DeFI-Net", ModelConfig(**CPU_MODEL), 64, 8)
    bench_model("DeFI-Net w/o REAM", ModelConfig(**CPU_MODEL, use_ream=False), 64, 8)
    bench_model("U-Net baseline", ModelConfig(**CPU_MODEL, arch="unet"), 64, 8)
    print("models on the EfficientNet-Lite0 encoder (configs/cpu_lite0.yaml sizes):")
    bench_model("DeFI-Net", ModelConfig(**LITE0_MODEL), 64, 8)
    bench_model("DeFI-Net w/o REAM", ModelConfig(**LITE0_MODEL, use_ream=False), 64, 8)
    bench_model("U-Net decoder", ModelConfig(**{**LITE0_MODEL, "arch": "unet"}), 64, 8)
    if args.paper:
        print("paper size:")
        bench_model("DeFI-Net (paper)", ModelConfig(), 352, 1)


if __name__ == "__main__":
    main()
