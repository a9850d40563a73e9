"""Reproduce the CPU-scale claim: DeFI-Net beats a plain encoder-decoder at inpainting localisation,
in-method and on a held-out inpainting method, and its REAM edge branch helps.

    uv run reproduce.py                 # seed 0, the offline default (configs/cpu.yaml); writes results/
    uv run reproduce.py --seeds 0 1 2   # more seeds (mean over seeds in the tables)
    uv run reproduce.py epochs=20       # a longer schedule for every model (any config key=value)
    uv run reproduce.py --smoke         # seconds: the pipeline only (writes to <runs>/results-smoke)

Three models trained with the same recipe, data, budget and seed(s) (configs/cpu.yaml): DeFI-Net, DeFI-Net
without REAM (no edge branch, no edge loss) and a U-Net of comparable size. Training uses real photos
inpainted by OpenCV Telea, OpenCV Navier-Stokes and an exemplar (patch) fill; testing uses held-out photos,
for those three methods ("in-method") and for scikit-image biharmonic inpainting, never seen in training
("cross-method"). Metrics: the official per-image AUC, macro F1 (binary F1 beside it) and IoU.
Writes ``results/cross_method.json`` (tables rendered into the README) and ``results/predictions.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from definet.config import TrainConfig
from definet.data import offline_splits
from definet.evaluate import predict
from definet.figures import save_grid
from definet.model import build_model
from shared.data.inpainting import INPAINT_METHODS, inpainting_dataset
from shared.metrics import minmax_normalize
from shared.runs import RunDir, package_versions, select_device

HERE = Path(__file__).resolve().parent
VARIANTS = {  # name -> key=value overrides of configs/cpu.yaml
    "DeFI-Net": [],
    "DeFI-Net w/o REAM": ["model.use_ream=false"],
    "U-Net baseline": ["model.arch=unet"],
}
METRICS = ("auc", "f1_macro", "f1", "iou")


def mean_over(splits: dict[str, dict], names: list[str]) -> dict[str, float]:
    return {k: float(np.mean([splits[n][k] for n in names])) for k in METRICS}


def figure(runs: dict[str, Path], path: Path, n: int = 6) -> Path:
    """Image, ground truth, DeFI-Net and U-Net predictions, DeFI-Net's edge (maps min-max normalised per image,
    as the metrics see them): 3 held-out-method (biharmonic) and 3 in-method (Telea) test images."""
    columns: dict[str, list] = {}
    device = select_device("cpu")
    for name in ("DeFI-Net", "U-Net baseline"):
        run = RunDir.open(runs[name])
        cfg = run.read_config(TrainConfig)
        model = build_model(cfg.model)
        run.load_checkpoint("best", {"model": model}, restore_rng=False)
        data = offline_splits(cfg.data, cfg.seed)
        images = np.concatenate([data["test/biharmonic"].images[:n // 2], data["test/telea"].images[:n - n // 2]])
        masks = np.concatenate([data["test/biharmonic"].masks[:n // 2], data["test/telea"].masks[:n - n // 2]])
        probs, edges = predict(model, images, cfg.data.image_size, device)
        columns.setdefault("image", list(images))
        columns.setdefault("ground truth", list(masks))
        columns[name] = [minmax_normalize(p) for p in probs]  # shown as the metrics see them
        if edges[0] is not None:
            edge_column = [minmax_normalize(e) for e in edges]
    columns["DeFI-Net edge"] = edge_column
    return save_grid(columns, path)


def samples_figure(path: Path, size: int = 64) -> Path:
    """The offline data: one test crop per inpainting method -- original, inpainted, mask, |difference|."""
    data = inpainting_dataset(len(INPAINT_METHODS), size=size, seed=7, photo_names=["coffee", "flower", "coins"])
    diff = np.abs(data["images"].astype(np.float32) - data["originals"].astype(np.float32)).mean(-1)
    return save_grid({"original": list(data["originals"]), "inpainted": list(data["images"]),
                      "mask": list(data["masks"].astype(np.float32)),
                      "|difference| x4": [np.clip(4 * d / 255, 0, 1) for d in diff]}, path)


def run_parallel(jobs: list[tuple[str, int, list[str]]], n_parallel: int) -> list[Path]:
    """Run the training commands, ``n_parallel`` at a time (each single-threaded); return their run folders."""
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    pending, running, done = list(enumerate(jobs)), {}, {}
    while pending or running:
        while pending and len(running) < n_parallel:
            i, (name, seed, cmd) = pending.pop(0)
            running[i] = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
            print(f"started {name} (seed {seed})", flush=True)
        for i, proc in list(running.items()):
            if proc.poll() is None:
                continue
            out = proc.stdout.read()
            del running[i]
            if proc.returncode != 0:
                raise RuntimeError(f"{jobs[i][0]} (seed {jobs[i][1]}) failed:\n{out[-3000:]}")
            done[i] = Path(next(line for line in out.splitlines() if line.startswith("run folder: "))
                           .removeprefix("run folder: ").strip())
            print(f"finished {jobs[i][0]} (seed {jobs[i][1]}): {done[i]}\n  " + out.strip().splitlines()[-1], flush=True)
        time.sleep(2)
    return [done[i] for i in range(len(jobs))]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--runs", type=Path, default=HERE / "runs", help="parent folder of the run folders")
    parser.add_argument("--results", type=Path, default=HERE / "results", help="where the JSON and figure go")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the pipeline only")
    parser.add_argument("--jobs", type=int, default=3, help="training processes at a time (default 3)")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config overrides for every model, e.g. epochs=20 (default: configs/cpu.yaml as is)")
    args = parser.parse_args(argv)
    t0 = time.time()
    config = ["--config", str(HERE / "configs" / "cpu.yaml"), "--device", "cpu", "--quiet"]
    if args.smoke:
        config.append("--smoke")

    jobs = []  # every (variant, seed) is one `train.py` process; --jobs of them run at a time
    for seed in args.seeds:
        for name, overrides in VARIANTS.items():
            tag = name.lower().replace(" ", "-").replace("/", "")
            cmd = [sys.executable, str(HERE / "train.py"), *config, "--seed", str(seed), "--out", str(args.runs),
                   "--tag", tag, *args.overrides, *overrides]
            jobs.append((name, seed, cmd))
    finished = run_parallel(jobs, args.jobs)

    raw: dict[str, dict] = {}
    runs: dict[str, Path] = {}
    for (name, seed, _), run_path in zip(jobs, finished):
        test = json.loads((run_path / "test.json").read_text())
        cfgd = json.loads((run_path / "config.json").read_text())
        raw.setdefault(name, {})[str(seed)] = {"run": str(run_path.relative_to(HERE)) if run_path.is_relative_to(HERE)
                                               else str(run_path), "parameters": cfgd["meta"]["parameters"],
                                               "train_time_s": test["train_time_s"], "splits": test["splits"]}
        runs.setdefault(name, run_path)

    cfg = RunDir.open(runs["DeFI-Net"]).read_config(TrainConfig)
    in_splits = [f"test/{m}" for m in cfg.data.train_methods]
    cross_splits = [f"test/{m}" for m in cfg.data.heldout_methods]
    tables = {}
    for table, names in (("in_method", in_splits), ("cross_method", cross_splits)):
        rows = []
        for name, per_seed in raw.items():
            scores = [mean_over(r["splits"], names) for r in per_seed.values()]
            params = next(iter(per_seed.values()))["parameters"]
            rows.append([name, params] + [float(np.mean([s[k] for s in scores])) for k in METRICS])
        tables[table] = {"columns": ["model", "parameters", "AUC", "F1 (macro, official)", "F1 (binary)", "IoU"],
                         "rows": rows, "floatfmt": ".3f"}
    per_split = []
    for name, per_seed in raw.items():
        for split in in_splits + cross_splits:
            per_split.append([name, split.removeprefix("test/")]
                             + [float(np.mean([r["splits"][split][k] for r in per_seed.values()])) for k in METRICS])
    tables["per_method"] = {"columns": ["model", "test method", "AUC", "F1 (macro)", "F1 (binary)", "IoU"],
                            "rows": per_split, "floatfmt": ".3f"}

    results_dir = args.results if not args.smoke else args.runs / "results-smoke"
    results_dir.mkdir(parents=True, exist_ok=True)
    fig = figure(runs, results_dir / "predictions.png")
    samples_figure(results_dir / "offline_samples.png")
    out = {
        "tables": tables,
        "seeds": args.seeds,
        "versions": package_versions("definet", "opencv-python", "scikit-image", "scikit-learn"),
        "wall_time_s": time.time() - t0,
        "command": "uv run reproduce.py" + (" --seeds " + " ".join(map(str, args.seeds)) if args.seeds != [0] else "")
                   + (" --smoke" if args.smoke else "") + "".join(" " + o for o in args.overrides),
        "config": "configs/cpu.yaml",
        "in_method_splits": in_splits,
        "cross_method_splits": cross_splits,
        "figure": fig.name,
        "raw": raw,
    }
    path = results_dir / "cross_method.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    for table in ("in_method", "cross_method"):
        print(table)
        for row in tables[table]["rows"]:
            print("  " + "  ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row))
    print(f"wrote {path} ({out['wall_time_s']:.0f} s)")
    return out


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
