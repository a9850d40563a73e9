"""Parameters, multiply-accumulates, one training step and one single-volume forward of every model at
configs/cpu.yaml's sizes (the matched layout). Prints, never asserts.

    uv run benchmarks/bench_models.py              # 24^3 volumes, batch 8, one thread
    uv run benchmarks/bench_models.py --threads 2
Step times are shown also as ratios to the 3D ResNet's, measured in the same process (on a loaded machine
compare the ratios, not the milliseconds).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from nlran.config import Config
from nlran.engine import build_model, count_parameters, flops_per_volume, latency_per_volume
from shared.runs import apply_overrides, load_config_file

ARCHS = ("nlran", "nlran_no_nonlocal", "nlran_no_attention", "resnet3d", "cbam3d", "covnet")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = apply_overrides(Config(), load_config_file(Path(__file__).resolve().parents[1] / "configs" / "cpu.yaml"))
    x = torch.rand(cfg.batch_size, 1, *cfg.volume_size)
    y = torch.arange(cfg.batch_size) % 3
    rows = []
    for arch in ARCHS:
        torch.manual_seed(0)
        model = build_model(apply_overrides(cfg, {"arch": arch}))
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        times = []
        for i in range(args.steps + 1):
            model.train()
            start = time.perf_counter()
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if i:
                times.append(time.perf_counter() - start)
        lat = latency_per_volume(model, tuple(cfg.volume_size), torch.device("cpu"), runs=5)
        rows.append((arch, count_parameters(model), flops_per_volume(model, tuple(cfg.volume_size)),
                     min(times) * 1000, lat["median_ms"]))
    ref = next(r for r in rows if r[0] == "resnet3d")
    for arch, params, gmac, step, infer in rows:
        print(f"{arch:20s} {params:>9,} params  {gmac * 1000:6.1f} MMAC/volume  train step (batch {cfg.batch_size}) "
              f"{step:6.0f} ms ({step / ref[3]:.2f}x ResNet)  inference {infer:6.1f} ms/volume")


if __name__ == "__main__":
    main()
