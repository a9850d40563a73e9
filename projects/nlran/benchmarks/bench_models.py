"""Parameters, multiply-accumulates, training-step and inference time of every model at configs/cpu.yaml's sizes
(the matched layout). Prints, never asserts; ``--json`` also writes a results table.

    uv run benchmarks/bench_models.py                          # 24^3 volumes, batch 8, one thread
    uv run benchmarks/bench_models.py --json results/bench.json

The models are timed round-robin (one step of each model per round, ``--repeats`` rounds, median per model),
so a change of the machine's load hits every model alike; times are also given as ratios to the 3D ResNet's
(on a shared machine compare the ratios, not the milliseconds).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from nlran.config import Config
from nlran.engine import build_model, count_parameters, flops_per_volume
from shared.runs import apply_overrides, load_config_file, package_versions

ARCHS = ("nlran", "nlran_no_nonlocal", "nlran_no_attention", "resnet3d", "cbam3d", "covnet")
NAMES = {"nlran": "NL-RAN", "nlran_no_nonlocal": "NL-RAN w/o non-local", "nlran_no_attention": "NL-RAN w/o attention",
         "resnet3d": "3D ResNet", "cbam3d": "CBAM-3D", "covnet": "COVNet (2D slices + max-pool)"}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds (median); one warm-up round before")
    parser.add_argument("--json", type=Path, default=None, help="write the table here (e.g. results/bench.json)")
    args = parser.parse_args(argv)
    wall = time.time()
    torch.set_num_threads(args.threads)
    cfg = apply_overrides(Config(), load_config_file(Path(__file__).resolve().parents[1] / "configs" / "cpu.yaml"))
    size = tuple(cfg.volume_size)
    x = torch.rand(cfg.batch_size, 1, *size)
    y = torch.arange(cfg.batch_size) % 3
    one = torch.rand(1, 1, *size)
    models, opts = {}, {}
    for arch in ARCHS:
        torch.manual_seed(0)
        models[arch] = build_model(apply_overrides(cfg, {"arch": arch}))
        opts[arch] = torch.optim.Adam(models[arch].parameters(), lr=1e-3)
    step_ms = {a: [] for a in ARCHS}
    infer_ms = {a: [] for a in ARCHS}
    for r in range(args.repeats + 1):
        for arch in ARCHS:
            model, opt = models[arch], opts[arch]
            model.train()
            start = time.perf_counter()
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            train_time = time.perf_counter() - start
            model.eval()
            with torch.no_grad():
                start = time.perf_counter()
                model(one)
                infer_time = time.perf_counter() - start
            if r:
                step_ms[arch].append(train_time * 1000)
                infer_ms[arch].append(infer_time * 1000)
    rows = []
    ref_step, ref_infer = np.median(step_ms["resnet3d"]), np.median(infer_ms["resnet3d"])
    for arch in ARCHS:
        step, infer = float(np.median(step_ms[arch])), float(np.median(infer_ms[arch]))
        rows.append([NAMES[arch], count_parameters(models[arch]), flops_per_volume(models[arch], size) * 1000,
                     step / ref_step, infer / ref_infer, step, infer])
        print(f"{arch:20s} {rows[-1][1]:>9,} params  {rows[-1][2]:6.1f} MMAC/volume  train step (batch "
              f"{cfg.batch_size}) {step:6.0f} ms ({step / ref_step:.2f}x ResNet)  inference {infer:6.1f} ms/volume "
              f"({infer / ref_infer:.2f}x)")
    out = {"tables": {"cost": {
        "columns": ["model", "params", "MMAC/volume", "train step / ResNet's", "inference / ResNet's",
                    "train step ms (batch 8)", "inference ms/volume"], "rows": rows, "floatfmt": ".3f"}},
        "volume_size": list(size), "batch_size": cfg.batch_size, "threads": args.threads, "repeats": args.repeats,
        "load_average": list(os.getloadavg()), "seeds": [0], "wall_time_s": time.time() - wall,
        "versions": package_versions("nlran"),
        "command": "uv run benchmarks/bench_models.py " + " ".join(argv if argv is not None else [])}
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2) + "\n")
        print(f"wrote {args.json}")
    return out


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
