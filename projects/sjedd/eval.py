"""Evaluate a SJEDD run folder: frame/video AUC per test split, per-label predictions and an explanation figure.

    uv run eval.py runs/<run>                          # the offline test splits, regenerated from the run's config
    uv run eval.py runs/<run> --data-root /data/lists  # the list-file test sets named by test_lists
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from shared.runs import RunDir, select_device
from sjedd.config import Config
from sjedd.evaluate import evaluate_splits, headline, predict
from sjedd.figures import explanation_grid
from sjedd.labels import NODE_NAMES
from sjedd.training import build_model, load_data


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, help="run folder written by train.py")
    parser.add_argument("--data-root", default=None, help="list-file dataset root (default: the run's data)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    parser.add_argument("--checkpoint", default="last", help="checkpoint name in <run>/checkpoints (default: last)")
    args = parser.parse_args(argv)

    run = RunDir.open(args.run)
    cfg = run.read_config(Config)
    if args.data_root is not None:
        cfg.data_root = args.data_root
    device = select_device(args.device)
    model = build_model(cfg).to(device)
    run.load_checkpoint(args.checkpoint, {"model": model}, restore_rng=False)

    tests = {k: v for k, v in load_data(cfg).items() if k != "train"}
    results = evaluate_splits(model, tests, cfg.method, device, cfg.batch_size)
    run.write_json("eval.json", results)

    with open(run.path / "predictions.csv", "w", newline="") as fh:  # every frame's per-label prediction
        writer = csv.writer(fh)
        columns = NODE_NAMES if cfg.method != "binary" else ("fake",)
        writer.writerow(["split", "index", "class", "video", *columns])
        for name, data in tests.items():
            probs = predict(model, data, cfg.method, device, cfg.batch_size)
            for i in range(len(data)):
                writer.writerow([name, i, data.classes[i], int(data.videos[i]), *np.round(probs[i], 4)])
            if cfg.method != "binary" and name == next(iter(tests)):
                step = max(1, len(data) // 8)  # one frame from across the split, so every class shows up
                pick = np.arange(0, len(data), step)[:8]
                explanation_grid(data.images[pick].numpy(), probs[pick], [data.classes[i] for i in pick],
                                 run.path / "explanations.png")
    print(f"eval of {run.path}:\n{headline(results)}\nwrote {run.path / 'eval.json'} and predictions.csv")
    return results


if __name__ == "__main__":
    main()
