"""Reproduce the CPU-scale claims: does DeFI-Net's decoder (DFPL + REAM + SAFF) beat a plain encoder-decoder at
inpainting localisation, in-method and on a held-out inpainting method, and does its REAM edge branch help?

    uv run reproduce.py                          # the pretrained-encoder comparison, seeds 0-4 -> results/
    uv run reproduce.py --seeds 0                # one seed
    uv run reproduce.py --experiment hrnet       # the paper's HRNet from scratch vs a plain U-Net (configs/cpu.yaml)
    uv run reproduce.py epochs=8                 # any config key=value, applied to every model
    uv run reproduce.py --smoke                  # seconds: the pipeline only (writes to <runs>/results-smoke)

``--experiment lite0`` (default; ``configs/cpu_lite0.yaml``): the regime the paper trains in, an ImageNet-pretrained
encoder. DeFI-Net, DeFI-Net without REAM and a U-Net decoder, all on the same EfficientNet-Lite0 encoder (real
ImageNet weights, :mod:`definet.encoders`), and the same three from a randomly initialised encoder: six models,
trained with the same recipe, data, budget and seed. ``--experiment hrnet`` (``configs/cpu.yaml``): the earlier
comparison, DeFI-Net with the paper's HRNet backbone from scratch vs a plain U-Net, with and without REAM.

Training uses real photos inpainted by OpenCV Telea, OpenCV Navier-Stokes and an exemplar (patch) fill; testing uses
held-out photos for those three methods ("in-method") and for scikit-image biharmonic inpainting, never seen in
training ("cross-method"). Metrics: the official per-image pixel AUC, macro F1 (binary F1 beside it) and IoU of the
mask, and the same scores of edge maps against the ground-truth edge band (the REAM head's, and the edge of every
model's predicted mask). Every seed draws its own data; differences are paired by seed. The trainings run one after
another in this process, each with ``--threads`` torch threads (default 1). Writes ``results/<experiment>.json`` (tables
rendered into the README) and a figure of predictions.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from definet.config import TrainConfig
from definet.data import offline_splits
from definet.evaluate import predict
from definet.figures import save_grid
from definet.model import build_model
from definet.train import main as train_main
from shared.data.inpainting import INPAINT_METHODS, inpainting_dataset
from shared.metrics import minmax_normalize
from shared.runs import RunDir, entrypoint, package_versions, select_device

PROJECT = Path(__file__).resolve().parents[2]

PRE, SCRATCH = "ImageNet", "random"
EXPERIMENTS = {  # name -> (config, results file, figure, {model name: (encoder init, decoder, key=value overrides)})
    "lite0": ("configs/cpu_lite0.yaml", "pretrained_encoder.json", "predictions_lite0.png", {
        "DeFI-Net (ImageNet Lite0)": (PRE, "DeFI-Net", []),
        "DeFI-Net w/o REAM (ImageNet Lite0)": (PRE, "DeFI-Net w/o REAM", ["model.use_ream=false"]),
        "U-Net (ImageNet Lite0)": (PRE, "U-Net", ["model.arch=unet"]),
        "DeFI-Net (random Lite0)": (SCRATCH, "DeFI-Net", ["model.encoder_pretrained=false"]),
        "DeFI-Net w/o REAM (random Lite0)": (SCRATCH, "DeFI-Net w/o REAM",
                                             ["model.encoder_pretrained=false", "model.use_ream=false"]),
        "U-Net (random Lite0)": (SCRATCH, "U-Net", ["model.encoder_pretrained=false", "model.arch=unet"]),
    }),
    "hrnet": ("configs/cpu.yaml", "cross_method.json", "predictions.png", {
        "DeFI-Net": (SCRATCH, "DeFI-Net", []),
        "DeFI-Net w/o REAM": (SCRATCH, "DeFI-Net w/o REAM", ["model.use_ream=false"]),
        "U-Net baseline": (SCRATCH, "U-Net", ["model.arch=unet"]),
    }),
}
METRICS = ("auc", "f1_macro", "f1", "iou")
EDGE_METRICS = ("auc", "f1_macro", "iou")


def mean_over(splits: dict[str, dict], names: list[str], keys) -> dict[str, float]:
    return {k: float(np.mean([splits[n][k] for n in names])) for k in keys if k in splits[names[0]]}


def mean_sd(values: list[float]) -> str:
    """'mean ± sd' over seeds (sd with n - 1; just the mean for one seed)."""
    values = np.asarray(values, float)
    return f"{values.mean():.3f}" + (f" ± {values.std(ddof=1):.3f}" if len(values) > 1 else "")


def paired(a: list[float], b: list[float]) -> dict[str, float]:
    """Per-seed differences a - b: mean, sd, min, max, and how many seeds favour a."""
    d = np.asarray(a, float) - np.asarray(b, float)
    return {"mean": float(d.mean()), "sd": float(d.std(ddof=1)) if len(d) > 1 else 0.0, "min": float(d.min()),
            "max": float(d.max()), "wins": int((d > 0).sum()), "n": len(d), "per_seed": d.tolist()}


def comparisons(models: dict[str, tuple]) -> list[tuple[str, str, str]]:
    """(label, model a, model b) pairs for the paired-difference table: the decoder at a fixed encoder init,
    REAM at a fixed init, and the encoder init at a fixed decoder."""
    by = {(init, dec): name for name, (init, dec, _) in models.items()}
    inits = sorted({init for init, _ in by}, key=[PRE, SCRATCH].index)
    out = []
    for init in inits:
        enc = "" if len(inits) == 1 else f", {init} encoder"
        out.append((f"DeFI-Net − U-Net{enc}", by[init, "DeFI-Net"], by[init, "U-Net"]))
        out.append((f"DeFI-Net − w/o REAM{enc}", by[init, "DeFI-Net"], by[init, "DeFI-Net w/o REAM"]))
    if len(inits) == 2:
        for dec in ("DeFI-Net", "U-Net"):
            out.append((f"ImageNet − random encoder, {dec}", by[PRE, dec], by[SCRATCH, dec]))
    return out


def figure(runs: dict[str, Path], names: list[str], path: Path, n: int = 6) -> Path:
    """Image, ground truth, the named models' predictions and the first one's edge map (min-max normalised per
    image, as the metrics see them): 3 held-out-method (biharmonic) and 3 in-method (Telea) test images."""
    columns: dict[str, list] = {}
    device = select_device("cpu")
    for name in names:
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
        columns[name.replace(" (", "\n(")] = [minmax_normalize(p) for p in probs]
        if edges[0] is not None and not any(k.endswith("edge") for k in columns):
            columns[name.split(" (")[0] + " edge"] = [minmax_normalize(e) for e in edges]
    return save_grid(columns, path)


def samples_figure(path: Path, size: int = 64) -> Path:
    """The offline data: one test crop per inpainting method -- original, inpainted, mask, |difference|."""
    data = inpainting_dataset(len(INPAINT_METHODS), size=size, seed=7, photo_names=["coffee", "flower", "coins"])
    diff = np.abs(data["images"].astype(np.float32) - data["originals"].astype(np.float32)).mean(-1)
    return save_grid({"original": list(data["originals"]), "inpainted": list(data["images"]),
                      "mask": list(data["masks"].astype(np.float32)),
                      "|difference| x4": [np.clip(4 * d / 255, 0, 1) for d in diff]}, path)


def build_tables(raw: dict[str, dict], models: dict[str, tuple], in_splits: list[str], cross_splits: list[str]
                 ) -> dict[str, dict]:
    groups = {"in-method": in_splits, "cross-method": cross_splits}
    per_seed = {name: {group: [mean_over(r["splits"], names, [*METRICS, *(f"edge_{s}_{k}" for s in ("head", "mask")
                                                                           for k in EDGE_METRICS)])
                               for r in raw[name].values()]
                       for group, names in groups.items()}
                for name in raw}
    tables = {}
    for group in groups:
        rows = []
        for name, (init, dec, _) in models.items():
            scores = per_seed[name][group]
            rows.append([dec, init, raw[name][next(iter(raw[name]))]["parameters"]]
                        + [mean_sd([s[k] for s in scores]) for k in METRICS])
        tables[group.replace("-", "_")] = {
            "columns": ["decoder", "encoder init", "parameters", "AUC", "F1 (macro, official)", "F1 (binary)", "IoU"],
            "rows": rows}
    tables["headline"] = {
        "columns": ["decoder", "encoder init", "AUC in-method", "AUC held-out method", "F1 in-method",
                    "F1 held-out method"],
        "rows": [[dec, init] + [float(np.mean([s[k] for s in per_seed[name][group]]))
                                for k in ("auc", "f1_macro") for group in groups]
                 for name, (init, dec, _) in models.items()],
        "floatfmt": ".3f"}
    rows = []
    for label, a, b in comparisons(models):
        for group in groups:
            d = {k: paired([s[k] for s in per_seed[a][group]], [s[k] for s in per_seed[b][group]])
                 for k in ("auc", "f1_macro", "iou")}
            rows.append([label, group, f"{d['auc']['mean']:+.3f} ± {d['auc']['sd']:.3f}",
                         f"{d['auc']['wins']}/{d['auc']['n']}",
                         f"{d['f1_macro']['mean']:+.3f} ± {d['f1_macro']['sd']:.3f}",
                         f"{d['f1_macro']['wins']}/{d['f1_macro']['n']}",
                         f"{d['iou']['mean']:+.3f} ± {d['iou']['sd']:.3f}"])
    tables["paired"] = {"columns": ["difference (paired by seed)", "test", "Δ AUC", "seeds > 0", "Δ F1 (macro)",
                                    "seeds > 0", "Δ IoU"], "rows": rows}
    rows = []
    for name, (init, dec, _) in models.items():
        for group in groups:
            scores = per_seed[name][group]
            head = ([mean_sd([s[f"edge_head_{k}"] for s in scores]) for k in EDGE_METRICS]
                    if "edge_head_auc" in scores[0] else [None] * len(EDGE_METRICS))
            rows.append([dec, init, group, *head, *(mean_sd([s[f"edge_mask_{k}"] for s in scores])
                                                    for k in EDGE_METRICS)])
    tables["edges"] = {"columns": ["decoder", "encoder init", "test", "edge head AUC", "edge head F1", "edge head IoU",
                                   "mask edge AUC", "mask edge F1", "mask edge IoU"], "rows": rows}
    per_method = []
    for name, (init, dec, _) in models.items():
        for split in in_splits + cross_splits:
            per_method.append([dec, init, split.removeprefix("test/")]
                              + [float(np.mean([r["splits"][split][k] for r in raw[name].values()])) for k in METRICS])
    tables["per_method"] = {"columns": ["decoder", "encoder init", "test method", "AUC", "F1 (macro)", "F1 (binary)",
                                        "IoU"], "rows": per_method, "floatfmt": ".3f"}
    return tables


@entrypoint
def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", choices=sorted(EXPERIMENTS), default="lite0")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--runs", type=Path, default=PROJECT / "runs", help="parent folder of the run folders")
    parser.add_argument("--results", type=Path, default=PROJECT / "results", help="where the JSON and figure go")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the pipeline only")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads of every training (default 1)")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config overrides for every model, e.g. epochs=8 (default: the experiment's config)")
    args = parser.parse_args(argv)
    t0 = time.time()
    config_file, results_name, figure_name, models = EXPERIMENTS[args.experiment]
    common = ["--config", str(PROJECT / config_file), "--device", "cpu", "--quiet", "--out", str(args.runs),
              "--threads", str(args.threads)]
    if args.smoke:
        common.append("--smoke")

    raw: dict[str, dict] = {}
    runs: dict[str, Path] = {}
    for seed in args.seeds:  # one seed's models share its data (generated once, definet.data.offline_splits)
        for name, (_, _, overrides) in models.items():
            tag = name.lower().replace(" (", "-").replace(")", "").replace(" ", "-").replace("/", "")
            t_model = time.time()
            run_path = train_main([*common, "--seed", str(seed), "--tag", tag, *args.overrides, *overrides])
            test = json.loads((run_path / "eval.json").read_text())["train"]
            raw.setdefault(name, {})[str(seed)] = {
                "run": str(run_path.relative_to(PROJECT)) if run_path.is_relative_to(PROJECT) else str(run_path),
                "parameters": test["parameters"], "train_time_s": test["train_time_s"],
                "wall_time_s": time.time() - t_model, "best_val_auc": test["best_val_auc"], "splits": test["splits"]}
            runs.setdefault(name, run_path)
            print(f"seed {seed} {name}: {time.time() - t_model:.0f} s, total {time.time() - t0:.0f} s", flush=True)

    cfg = RunDir.open(next(iter(runs.values()))).read_config(TrainConfig)
    in_splits = [f"test/{m}" for m in cfg.data.train_methods]
    cross_splits = [f"test/{m}" for m in cfg.data.heldout_methods]
    tables = build_tables(raw, models, in_splits, cross_splits)

    results_dir = args.results if not args.smoke else args.runs / "results-smoke"
    results_dir.mkdir(parents=True, exist_ok=True)
    shown = [n for n in models if "w/o REAM" not in n]
    fig = figure(runs, shown, results_dir / figure_name)
    samples_figure(results_dir / "offline_samples.png")
    command = ("uv run reproduce.py" + (f" --experiment {args.experiment}" if args.experiment != "lite0" else "")
               + (" --seeds " + " ".join(map(str, args.seeds)) if args.seeds != [0, 1, 2, 3, 4] else "")
               + (f" --threads {args.threads}" if args.threads != 1 else "")
               + (" --smoke" if args.smoke else "") + "".join(" " + o for o in args.overrides))
    out = {
        "tables": tables,
        "experiment": args.experiment,
        "seeds": args.seeds,
        "threads": args.threads,
        "versions": package_versions("definet", "timm", "opencv-python", "scikit-image", "scikit-learn"),
        "wall_time_s": time.time() - t0,
        "command": command,
        "config": config_file,
        "models": {name: {"encoder_init": init, "decoder": dec, "overrides": ov}
                   for name, (init, dec, ov) in models.items()},
        "in_method_splits": in_splits,
        "cross_method_splits": cross_splits,
        "figure": fig.name,
        "raw": raw,
    }
    path = results_dir / results_name
    path.write_text(json.dumps(out, indent=1) + "\n")
    for table in ("in_method", "cross_method", "paired"):
        print(table)
        for row in tables[table]["rows"]:
            print("  " + " | ".join(str(v) for v in row))
    print(f"wrote {path} ({out['wall_time_s']:.0f} s)")
    return out
