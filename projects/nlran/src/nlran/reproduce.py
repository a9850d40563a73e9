"""Reproduce the paper's claim at CPU scale on the chest-CT phantom: a matched comparison with bootstrap CIs,
and heat-map localisation scored inside the lungs.

    uv run reproduce.py                          # 4 models x 5 seeds, one thread; results/cpu_claim.json + figure
    uv run reproduce.py --archs nlran resnet3d --seeds 0 1     # a subset
    uv run reproduce.py --smoke --results /tmp/r # seconds, tiny sizes (tests)

Claim (arXiv 2408.04300, abstract): NL-RAN beats CovNet, CBAM and ResNet in AUC, precision and F1, and its
attention heat map is clearer than CAM. Every model trains with configs/cpu.yaml -- the matched layout (same
stem, stage resolutions, ~equal parameters and MACs) -- under the same budget, seeds and data (the phantom
of seed s is shared by every model of seed s); the checkpoint with the best validation macro AUC is tested
on 300 test phantoms. Macro AUC gets a two-level paired bootstrap interval (seeds and test volumes,
:mod:`nlran.stats`); every heat map (attention mask, CAM / Grad-CAM of the true class, and the CT
intensity as a reference) is scored against the true lesion masks inside the lungs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from shared.runs import entrypoint

PROJECT = Path(__file__).resolve().parents[2]
ARCHS = ("nlran", "nlran_no_nonlocal", "nlran_no_attention", "resnet3d", "cbam3d", "covnet")
DEFAULT_ARCHS = ("nlran", "nlran_no_nonlocal", "resnet3d", "cbam3d")
NAMES = {"nlran": "NL-RAN", "nlran_no_nonlocal": "NL-RAN w/o non-local", "nlran_no_attention": "NL-RAN w/o attention",
         "resnet3d": "3D ResNet", "cbam3d": "CBAM-3D", "covnet": "COVNet (2D slices + max-pool)"}
HEAT_NAMES = {"attention": "attention mask (module 1)", "cam": "CAM (true class)", "gradcam": "Grad-CAM (true class)"}
SMOKE_BUDGET = ["epochs=1", "split_sizes=[24,6,12]"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--archs", nargs="+", default=list(DEFAULT_ARCHS), choices=ARCHS)
    parser.add_argument("--heatmap-volumes", type=int, default=40, help="test volumes with lesions scored per run")
    parser.add_argument("--n-boot", type=int, default=2000, help="bootstrap replicates of the AUC intervals")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (recorded; default 1)")
    parser.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda", "mps"])
    parser.add_argument("--runs", type=Path, default=PROJECT / "runs" / "reproduce", help="parent of the run folders")
    parser.add_argument("--results", type=Path, default=PROJECT / "results", help="where the JSON and figure go")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (tests)")
    parser.add_argument("--reuse", action="store_true",
                        help="take each (model, seed) already finished under --runs (raw/<arch>-seed<s>.json) "
                             "instead of training it again (finish an interrupted reproduction)")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("overrides", nargs="*", help="key=value config overrides for every run (e.g. epochs=4)")
    return parser


def train_and_evaluate(train_argv: list[str], device: str, heatmap_volumes: int) -> dict:
    """Train one model with ``nlran.train.main(train_argv)``, then evaluate its best checkpoint."""
    from nlran import eval as evaluation
    from nlran import train
    from nlran.config import Config
    from nlran.engine import build_model
    from shared.runs import RunDir, select_device

    run = RunDir.open(train.main(train_argv)["run"])
    cfg = run.read_config(Config)
    model = build_model(cfg)
    state = run.load_checkpoint("best", {"model": model}, restore_rng=False)
    result = evaluation.evaluate(model, cfg, select_device(device), heatmap_volumes)
    rows = run.read_metrics()
    result["train_steps"] = int(sum(r["train_steps"] for r in rows))
    result["train_step_ms"] = 1000 * sum(r["train_seconds"] for r in rows) / max(result["train_steps"], 1)
    result["best_epoch"] = state["epoch"]
    result["run"] = os.path.relpath(run.path, PROJECT)  # relative to projects/nlran (copyable results)
    return result


def _mean_std(values: list[float]) -> tuple[float, float | None]:
    return float(np.mean(values)), (float(np.std(values, ddof=1)) if len(values) > 1 else None)


@entrypoint
def main(argv: list[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    import torch

    from nlran.stats import bootstrap_macro_auc
    from shared.runs import RunDir, package_versions

    torch.set_num_threads(args.threads)
    start = time.time()
    options = ["--config", str(PROJECT / "configs" / "cpu.yaml"), "--device", args.device, "--out", str(args.runs),
               "--quiet", "--threads", str(args.threads)] + (["--smoke"] if args.smoke else [])
    overrides = [*args.overrides, *(SMOKE_BUDGET if args.smoke else [])]
    raw: dict[str, dict[str, dict]] = {arch: {} for arch in args.archs}
    for seed in args.seeds:  # seeds outside: the phantom of a seed is generated once (cached) for all models
        for arch in args.archs:
            cached = args.runs / "raw" / f"{arch}-seed{seed}.json"
            if args.reuse and cached.is_file():
                result = json.loads(cached.read_text())
            else:
                result = train_and_evaluate([*options, "--seed", str(seed), f"arch={arch}", *overrides], args.device,
                                            args.heatmap_volumes)
                cached.parent.mkdir(parents=True, exist_ok=True)
                cached.write_text(json.dumps(result))
            raw[arch][str(seed)] = result
            if not args.quiet:
                t = result["test"]
                print(f"[seed {seed}] {NAMES[arch]}: test AUC {t['auc_macro']:.4f}  F1 {t['f1_macro']:.4f}  "
                      f"(best epoch {result['best_epoch']}, {result['train_step_ms']:.0f} ms/step, "
                      f"{(time.time() - start) / 60:.1f} min)", flush=True)

    # --- statistics over seeds: bootstrap CI of the mean macro AUC, paired differences to NL-RAN ----------
    seeds = [str(s) for s in args.seeds]
    first = args.archs[0]
    labels = [np.asarray(raw[first][s]["test_labels"]) for s in seeds]
    probs = {arch: [np.asarray(raw[arch][s]["test_probs"]) for s in seeds] for arch in args.archs}
    reference = "nlran" if "nlran" in args.archs else first
    boot = bootstrap_macro_auc(labels, probs, n_boot=args.n_boot, reference=reference)
    step_ref = "resnet3d" if "resnet3d" in args.archs else first

    cls_rows, loc_rows, seed_rows = [], [], []
    for arch in args.archs:
        per_seed = [raw[arch][s] for s in seeds]
        stat = lambda key: _mean_std([r["test"][key] for r in per_seed])  # noqa: E731
        b = boot[arch]
        ratio = np.mean([raw[arch][s]["train_step_ms"] / raw[step_ref][s]["train_step_ms"] for s in seeds])
        cls_rows.append([NAMES[arch], per_seed[0]["parameters"], round(per_seed[0]["gmac_per_volume"] * 1000, 1),
                         float(ratio), b["mean"], f"[{b['ci_low']:.3f}, {b['ci_high']:.3f}]", stat("auc_macro")[1],
                         (f"{b['diff_mean']:+.3f} [{b['diff_ci_low']:+.3f}, {b['diff_ci_high']:+.3f}]"
                          if "diff_mean" in b else "—"),
                         stat("precision_macro")[0], stat("f1_macro")[0], stat("accuracy")[0]])
        seed_rows.append([NAMES[arch], *[r["test"]["auc_macro"] for r in per_seed],
                          *[int(r["best_epoch"]) for r in per_seed]])
        names = list(per_seed[0].get("localisation", {}))
        for heat in names:
            if heat == "ct_intensity" and arch != first:
                continue  # the reference map does not depend on the model: one row
            loc = lambda key: _mean_std([r["localisation"][heat][key] for r in per_seed])[0]  # noqa: E731
            whole = (_mean_std([r["localisation_whole_volume"][heat]["voxel_auc"] for r in per_seed])[0]
                     if heat in per_seed[0].get("localisation_whole_volume", {}) else None)
            model = "— (reference)" if heat == "ct_intensity" else NAMES[arch]
            label = "CT intensity (windowed HU)" if heat == "ct_intensity" else HEAT_NAMES[heat]
            loc_rows.append([model, label, loc("voxel_auc"), loc("pointing_game"), loc("pointing_chance"),
                             loc("topk_iou"), whole])
    loc_rows.sort(key=lambda row: row[0] == "— (reference)")

    figure = None if args.smoke else _figure(raw, args.results / "heatmaps.png", seeds[0])
    wall = time.time() - start
    config = json.loads((PROJECT / raw[first][seeds[0]]["run"] / "config.json").read_text())
    results = {
        "tables": {
            "classification": {
                "columns": ["model", "params", "MMAC/volume", "step time / ResNet's", "AUC (macro, mean)",
                            "AUC 95% CI", "AUC seed std", "AUC - NL-RAN [95% CI]", "precision (macro)",
                            "F1 (macro)", "accuracy"],
                "rows": cls_rows, "floatfmt": ".3f"},
            "per_seed": {"columns": ["model", *[f"AUC seed {s}" for s in seeds], *[f"best epoch s{s}" for s in seeds]],
                         "rows": seed_rows, "floatfmt": ".3f"},
            "localisation": {
                "columns": ["model", "heat map", "voxel AUC in lungs", "pointing game in lungs", "pointing chance",
                            "top-k IoU in lungs", "voxel AUC whole volume"],
                "rows": loc_rows, "floatfmt": ".3f"},
        },
        "bootstrap": {"n_boot": args.n_boot, "reference": reference, "level": 0.95, "auc": boot,
                      "method": "two-level paired bootstrap over seeds and test volumes (nlran.stats)"},
        "seeds": args.seeds,
        "threads": args.threads,
        "budget": {"config": "configs/cpu.yaml", "overrides": args.overrides + (SMOKE_BUDGET if args.smoke else []),
                   "resolved_config": config.get("config", config), "smoke": args.smoke},
        "versions": package_versions("nlran", "monai"),
        "wall_time_s": wall,
        "command": "uv run reproduce.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "figure": (str(figure.relative_to(PROJECT)) if figure and figure.is_relative_to(PROJECT)
                   else figure and str(figure)),
        "runs": {arch: {s: {k: v for k, v in r.items() if k not in ("test_probs", "test_labels")}
                        for s, r in per.items()} for arch, per in raw.items()},
        "test_predictions": {"labels": {s: raw[first][s]["test_labels"] for s in seeds},
                             "probs": {arch: {s: np.round(raw[arch][s]["test_probs"], 4).tolist() for s in seeds}
                                       for arch in args.archs}},
    }
    args.results.mkdir(parents=True, exist_ok=True)
    path = args.results / ("smoke.json" if args.smoke else "cpu_claim.json")
    RunDir(args.results).write_json(path.name, results)
    print(f"wrote {path} ({wall / 60:.1f} min)")
    return results


def _figure(raw: dict, path: Path, seed: str) -> Path | None:
    """Slices of seed ``seed``'s test volumes with NL-RAN's attention / CAM / Grad-CAM and the ResNet's CAMs."""
    import torch

    from nlran.config import Config
    from nlran.data import build_splits
    from nlran.engine import build_model
    from nlran.figures import plot_heatmaps
    from nlran.heatmaps import heatmaps_for
    from shared.runs import RunDir

    shown = [a for a in ("nlran", "resnet3d") if a in raw]
    if not shown:
        return None
    maps, test, idx = {}, None, None
    for arch in shown:
        run = RunDir.open(PROJECT / raw[arch][seed]["run"])
        cfg = run.read_config(Config)
        model = build_model(cfg)
        run.load_checkpoint("best", {"model": model}, restore_rng=False)
        if test is None:
            test = build_splits(cfg)["test"]
            labels = test.labels.numpy()
            # two COVID-19 and two CP volumes
            idx = np.concatenate([np.flatnonzero(labels == 0)[:2], np.flatnonzero(labels == 1)[:2]])
        for name, heat in heatmaps_for(model.to(torch.device("cpu")), test.volumes[idx], test.labels[idx]).items():
            maps[f"{NAMES[arch]} {HEAT_NAMES[name].split(' (')[0]}"] = heat
    return plot_heatmaps(test.volumes[idx][:, 0].numpy(), test.lesion_masks[idx].numpy(), test.labels[idx].numpy(),
                         maps, path, lungs=test.lung_masks[idx].numpy())


if __name__ == "__main__":
    main()
