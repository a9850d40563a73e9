"""Reproduce the paper's mechanism at CPU scale: RLD stays robust when the teacher errs, KD and DKD degrade.

    uv run reproduce.py                 # every experiment, 5 seeds, 1 thread (about 10-15 min on an idle core)
    uv run reproduce.py --seeds 2 --experiments teacher_error

Offline digits protocol (spec, "Offline CPU plan"): an MLP teacher (64-256-256-10) trained with CE on the
train split, controlled teacher mistakes (a fraction r of the student's training samples get their teacher
ground-truth logit swapped with the runner-up), an MLP student (64-32-10) trained by each method for 100
epochs with the same seed, initialisation and batch order (paired comparison), final-epoch test accuracy.

Experiments (each writes ``results/<name>.json``; the two sweeps also a figure ``results/<name>.png``):

* ``teacher_error``  CE / KD / DKD / LA / LR / RC / RLD at r = 0, 0.2, 0.4, plus paired differences;
* ``weak_teacher``   the "natural" weak teacher: trained on 15% of the train split, student on the other 85%;
* ``few_labels``     few labels: the student sees 10% of the train split (about 90 digits), the teacher all of it;
* ``ablation``       SCD only / MCD only / both, strict (M_g) vs non-strict (M_ge) mask, tau_a = tau, r = 0 and 0.4.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch

from rld.config import Config, RLDConfig
from rld.data import digits_splits
from rld.engine import TensorBatches, evaluate, make_optimizer, predict, train_epoch
from rld.models import build_model
from rld.teachers import digits_teacher_logits, train_digits_teacher
from shared.runs import apply_overrides, load_config_file, package_versions, progress, seed_everything

PROJECT = Path(__file__).resolve().parents[2]
RATES = (0.0, 0.2, 0.4)
METHOD_NAMES = {"ce": "CE", "kd": "KD", "dkd": "DKD", "la": "LA", "lr": "LR", "rc": "RC", "rld": "RLD"}


def base_config() -> Config:
    return apply_overrides(Config(), load_config_file(PROJECT / "configs" / "cpu.yaml"))


class Teachers:
    """One trained teacher per (seed, teacher_fraction), shared by every method and error rate."""

    def __init__(self, device: torch.device):
        self.device, self.cache = device, {}

    def get(self, cfg: Config, splits) -> torch.nn.Module:
        key = (cfg.seed, cfg.teacher_fraction)
        if key not in self.cache:
            seed_everything(10_000 + cfg.seed)
            teacher = build_model(cfg.teacher, 10).to(self.device)
            self.cache[key] = train_digits_teacher(cfg, teacher, splits, self.device)
        return self.cache[key]


def run_student(cfg: Config, teachers: Teachers, device: torch.device) -> dict:
    """Train one student; return final/best test accuracy and how it treats the corrupted samples."""
    splits = digits_splits(cfg.seed, cfg.teacher_fraction, cfg.student_fraction)
    teacher = teachers.get(cfg, splits)
    logits, corrupted, stats = digits_teacher_logits(cfg, teacher, splits, device)
    seed_everything(cfg.seed)  # same student initialisation and batch order for every method (paired)
    student = build_model(cfg.student, 10).to(device)
    optimizer = make_optimizer(cfg, student)
    train = TensorBatches(splits.student_x, splits.student_y, cfg.batch_size)
    test = TensorBatches(splits.test_x, splits.test_y, 1024, shuffle=False)
    best = 0.0
    for epoch in range(1, cfg.epochs + 1):
        train_epoch(student, train, lambda x, idx: logits[idx], cfg, optimizer, epoch, device)
        best = max(best, evaluate(student, test, device))
    final = evaluate(student, test, device)
    out = {"final": final, "best": max(best, final), "teacher_train_error": stats["teacher_train_error"],
           "teacher_test_acc": stats["teacher_test_acc"]}
    if corrupted.any():
        pred, labels = predict(student, TensorBatches(splits.student_x, splits.student_y, 1024, shuffle=False), device)
        pred = pred.argmax(1)
        out["copies_mistake"] = (pred[corrupted] == logits.argmax(1)[corrupted]).float().mean().item()
    return out


def mean_std(values) -> str:
    values = np.asarray(values, dtype=float)
    return f"{values.mean():.3f} ± {values.std(ddof=1) if len(values) > 1 else 0.0:.3f}"


def sweep(name: str, variants: dict[str, dict], rates, seeds, teachers, device, raw: dict, quiet: bool,
          common: dict | None = None) -> None:
    """Run every variant (a dict of config overrides) at every rate and seed into ``raw[name]``."""
    raw[name] = {}
    jobs = [(v, r, s) for v in variants for r in rates for s in seeds]
    for label, rate, seed in progress(jobs, desc=name, quiet=quiet):
        cfg = apply_overrides(base_config(), {**(common or {}), **variants[label], "teacher_error_rate": rate,
                                              "seed": seed})
        if cfg.method == "ce" and rate != rates[0]:  # CE never reads the teacher: identical run, reuse it
            result = dict(raw[name][label][str(rates[0])][seeds.index(seed)], teacher_train_error=rate)
        else:
            result = run_student(cfg, teachers, device)
        raw[name].setdefault(label, {}).setdefault(str(rate), []).append(result)
        if not quiet:
            print(f"[{name}] {label:>14} r={rate:.1f} seed={seed}: final {result['final']:.3f} "
                  f"(teacher train err {result['teacher_train_error']:.3f})", flush=True)


def accuracy_table(runs: dict, rates, key: str = "final") -> dict:
    """Mean ± std of ``key`` per variant (rows) and error rate (columns, with the measured teacher train error)."""
    first = next(iter(runs.values()))
    columns = ["method"] + [f"r = {r} (teacher err {np.mean([x['teacher_train_error'] for x in first[str(r)]]):.2f})"
                            for r in rates]
    rows = [[label] + [mean_std([x[key] for x in per_rate[str(r)]]) for r in rates]
            for label, per_rate in runs.items()]
    return {"columns": columns, "rows": rows}


def paired_table(runs: dict, rates, pairs) -> dict:
    rows = []
    for a, b in pairs:
        row = [f"{a} − {b}"]
        for r in rates:
            diff = np.array([x["final"] for x in runs[a][str(r)]]) - np.array([x["final"] for x in runs[b][str(r)]])
            row.append(f"{diff.mean():+.3f} ± {diff.std(ddof=1) if len(diff) > 1 else 0.0:.3f} "
                       f"({int((diff > 0).sum())}/{len(diff)} wins)")
        rows.append(row)
    return {"columns": ["paired difference"] + [f"r = {r}" for r in rates], "rows": rows}


def plot(runs: dict, path: Path, title: str) -> None:
    """Final-epoch test accuracy vs injected teacher error rate, one line per method (mean ± std)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.4, 3.8))
    for label, per_rate in runs.items():
        rates = sorted(float(r) for r in per_rate)
        finals = [[x["final"] for x in per_rate[str(r)]] for r in rates]
        ax.errorbar(rates, [np.mean(f) for f in finals], yerr=[np.std(f) for f in finals], marker="o", capsize=3,
                    label=label, linewidth=2.5 if label == "RLD" else 1.2)
    ax.set_xlabel("injected teacher error rate r (share of train samples)")
    ax.set_ylabel("final-epoch test accuracy")
    ax.set_title(f"digits, {title.replace('_', ' ')}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


EXPERIMENTS = ("teacher_error", "weak_teacher", "few_labels", "ablation")


def experiment(name: str, seeds, teachers, device, quiet: bool) -> tuple[dict, dict]:
    """Run one experiment; return its tables and raw per-seed results."""
    raw, tables = {}, {}
    methods = {METHOD_NAMES[m]: {"method": m} for m in ("ce", "kd", "dkd", "la", "lr", "rc", "rld")}
    core = {k: methods[k] for k in ("CE", "KD", "DKD", "RLD")}
    if name == "teacher_error":
        sweep(name, methods, RATES, seeds, teachers, device, raw, quiet)
        runs = raw[name]
        tables["accuracy"] = accuracy_table(runs, RATES)
        tables["best_epoch"] = accuracy_table(runs, RATES, key="best")
        tables["paired"] = paired_table(runs, RATES, [("RLD", "DKD"), ("RLD", "KD"), ("RLD", "LA"), ("RLD", "LR"),
                                                      ("RLD", "RC"), ("RLD", "CE")])
        tables["copies_mistake"] = {
            "columns": ["method"] + [f"r = {r}" for r in RATES[1:]],
            "rows": [[label] + [mean_std([x["copies_mistake"] for x in per_rate[str(r)]]) for r in RATES[1:]]
                     for label, per_rate in runs.items() if label != "CE"]}  # CE runs are reused from r = 0
    elif name == "weak_teacher":
        sweep(name, core, (0.0,), seeds, teachers, device, raw, quiet,
              common={"teacher_fraction": 0.15, "student_fraction": 0.85})
        rows = []
        for label, per_rate in raw[name].items():
            runs = per_rate["0.0"]
            rows.append([label, mean_std([x["final"] for x in runs]),
                         mean_std([x["teacher_train_error"] for x in runs])])
        tables["accuracy"] = {"columns": ["method", "final test acc", "teacher error on the student's split"],
                              "rows": rows}
        tables["paired"] = paired_table(raw[name], (0.0,), [("RLD", "DKD"), ("RLD", "KD"), ("RLD", "CE")])
    elif name == "few_labels":
        sweep(name, core, (0.0, 0.4), seeds, teachers, device, raw, quiet, common={"student_fraction": 0.1})
        tables["accuracy"] = accuracy_table(raw[name], (0.0, 0.4))
        tables["paired"] = paired_table(raw[name], (0.0, 0.4), [("RLD", "DKD"), ("RLD", "KD"), ("RLD", "CE"),
                                                                ("KD", "CE"), ("DKD", "CE")])
    elif name == "ablation":
        variants = {"SCD only": {"method": "rld", "rld.beta": 0.0},
                    "MCD only (M_ge)": {"method": "rld", "rld.alpha": 0.0},
                    "SCD + MCD (M_g)": {"method": "rld", "rld.strict_mask": True},
                    "SCD + MCD (M_ge) = RLD": {"method": "rld"},
                    "RLD with tau_a = tau": {"method": "rld", "rld.same_t": True}}
        sweep(name, variants, (0.0, 0.4), seeds, teachers, device, raw, quiet)
        tables["accuracy"] = accuracy_table(raw[name], (0.0, 0.4))
        tables["accuracy"]["columns"][0] = "loss"
    for table in tables.values():
        table["floatfmt"] = ".3f"
    return tables, raw


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--experiments", nargs="+", default=list(EXPERIMENTS), choices=EXPERIMENTS)
    parser.add_argument("--out", type=Path, default=PROJECT / "results")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads for torch (default 1: the committed results were made with 1)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    seeds = list(range(args.seeds))
    teachers = Teachers(device)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.experiments:
        started = time.time()
        tables, raw = experiment(name, seeds, teachers, device, args.quiet)
        wall = time.time() - started
        command = (f"uv run reproduce.py --experiments {name}" + (f" --seeds {args.seeds}" if args.seeds != 5 else "")
                   + (f" --threads {args.threads}" if args.threads != 1 else ""))
        result = {"tables": tables, "seeds": seeds, "versions": package_versions("rld"), "wall_time_s": round(wall, 1),
                  "command": command,
                  "threads": torch.get_num_threads(),
                  "metric": "final-epoch test accuracy (fraction), mean ± std (ddof 1) over seeds; paired = same seed",
                  "protocol": {"config": dataclasses.asdict(base_config()),
                               "rld_defaults": dataclasses.asdict(RLDConfig())},
                  "raw": raw[name]}
        (args.out / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n")
        if name in ("teacher_error", "few_labels"):
            plot(raw[name], args.out / f"{name}.png", name)
        print(f"wrote {args.out / (name + '.json')} in {wall / 60:.1f} min", flush=True)


if __name__ == "__main__":
    main()
