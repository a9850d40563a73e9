"""Reproduce the SFD claim at CPU scale: SFD and SFD-v vs training-free solvers at NFE 2–5, same teacher.

    uv run reproduce.py                      # both experiments (see the README for times)
    uv run reproduce.py --experiment digits  # results/digits.json: NFE 2–5, SFD per NFE, one SFD-v model
    uv run reproduce.py --experiment toy2d   # results/toy2d.json: NFE 2–3 and the factor ablations

digits uses the committed teacher ``results/digits_teacher/teacher.safetensors`` (made by
``uv run train.py --config configs/digits_teacher.yaml``); ``--train-teacher`` retrains it here instead.
The 2-D teacher is trained in the run. Every student is distilled from the same teacher with the same seed and
scored on the same noise.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import torch

from sfd.config import Config
from sfd.eval import figure
from sfd.pipeline import (
    baseline_rows,
    format_table,
    load_teacher,
    make_eval_set,
    metric_names,
    reference_row,
    student_row,
)
from sfd.train import distill, train_teacher
from shared.runs import RunDir, apply_overrides, load_config_file, package_versions, seed_everything, select_device

PROJECT = Path(__file__).resolve().parents[2]
TEACHER = PROJECT / "results" / "digits_teacher" / "teacher.safetensors"

# CPU budget (a 2-core machine shared by ~8 jobs): 100 SFD iterations per student (200 for SFD-v) of 32 (digits) /
# 64 (2-D) teacher trajectories
DIGITS = {"config": "configs/cpu.yaml", "nfes": [2, 3, 4, 5], "batch": 32, "total_kimg": 3.2, "sfdv_kimg": 6.4,
          "eval_samples": 500, "ref_steps": 41}
TOY = {"config": "configs/toy2d.yaml", "nfes": [2, 3], "batch": 64, "total_kimg": 6.4, "teacher_iters": 800,
       "teacher_batch": 256, "eval_samples": 1000, "ref_steps": 101}
SMOKE = {"nfes": [2], "total_kimg": 0.032, "sfdv_kimg": 0.032, "eval_samples": 64, "ref_steps": 6,
         "teacher_iters": 20, "batch": 16}
# (label, overrides) of the 2-D factor ablations, all at NFE 2
ABLATIONS = [
    ("SFD (K=4, σ_min=0.006, AFS, L1, global)", {}),
    ("K=1 teacher step per student step", {"M": 0}),
    ("K=2", {"M": 1}),
    ("σ_min = 0.002 (EDM default)", {"sigma_min": 0.002}),
    ("no AFS (3 timestamps, Euler first step)", {"afs": False, "num_steps": 3}),
    ("L2 loss", {"loss": "l2"}),
    ("local (teacher-forced inputs)", {"global_view": False}),
]


def student(cfg: Config, teacher, out: Path, tag: str, device, quiet: bool):
    """Distil one student into its own run folder; return it and the wall time."""
    run = RunDir.create(out, tag)
    run.write_config(cfg, "sfd")
    seed_everything(cfg.seed)
    start = time.time()
    model = distill(cfg, teacher, run, device, quiet)
    return model, time.time() - start


def table(cfg: Config, rows: list[dict], extra: tuple[str, ...] = ()) -> dict:
    names = metric_names(cfg)
    return {"columns": ["method", "NFE", *names, *extra],
            "rows": [[r["method"], r["nfe"], *[r[n] for n in names], *[r.get(e) for e in extra]] for r in rows],
            "floatfmt": ".3f"}


def nfe2_table(cfg: Config, rows: list[dict]) -> dict:
    """The README's headline: the teacher and every method at NFE 2 (the same numbers as the main table)."""
    return table(cfg, [r for i, r in enumerate(rows) if i == 0 or r["nfe"] == 2])


def run_digits(args, device) -> dict:
    cfg = apply_overrides(Config(), load_config_file(PROJECT / DIGITS["config"]))
    cfg = dataclasses.replace(cfg, seed=args.seed, eval_samples=DIGITS["eval_samples"], ref_steps=DIGITS["ref_steps"],
                              total_kimg=DIGITS["total_kimg"], batch=DIGITS.get("batch", cfg.batch),
                              classifier_steps=DIGITS.get("classifier_steps", cfg.classifier_steps))
    out = args.out / "reproduce-digits"
    if args.train_teacher:
        teacher_cfg = apply_overrides(cfg, load_config_file(PROJECT / "configs/digits_teacher.yaml"))
        run = RunDir.create(out, "teacher")
        run.write_config(teacher_cfg, "sfd")
        seed_everything(cfg.seed)
        teacher = train_teacher(teacher_cfg, run, device, args.quiet).eval().requires_grad_(False)
    else:
        teacher = load_teacher(dataclasses.replace(cfg, teacher_path=str(TEACHER)), device)
    ev = make_eval_set(cfg, teacher, device)
    rows, times = [reference_row(cfg, ev)], {}
    cfg_v = dataclasses.replace(cfg, step_condition=True, step_choices=(4, 5, 6, 7), total_kimg=DIGITS["sfdv_kimg"])
    sfdv, times["SFD-v"] = student(cfg_v, teacher, out, "sfdv", device, args.quiet)
    for nfe in DIGITS["nfes"]:
        rows += baseline_rows(cfg, teacher, ev, nfe)
        cfg_n = dataclasses.replace(cfg, num_steps=nfe + 2)
        model, times[f"SFD NFE {nfe}"] = student(cfg_n, teacher, out, f"sfd-nfe{nfe}", device, args.quiet)
        rows.append({**student_row(cfg_n, model, ev, nfe, "SFD"), "distill_s": times[f"SFD NFE {nfe}"]})
        rows.append(student_row(cfg_v, sfdv, ev, nfe, "SFD-v (one model)"))
        if nfe == 2:
            figure(cfg_n, teacher, model, ev, 2, args.results / "digits_samples_nfe2.png")
    print(format_table(cfg, rows))
    return {"tables": {"main": table(cfg, rows, ("distill_s",)), "nfe2": nfe2_table(cfg, rows)}, "rows": rows,
            "distill_seconds": times,
            "digits_classifier_accuracy": ev.classifier_acc, "config": dataclasses.asdict(cfg),
            "iterations": {"sfd": cfg.distill_iters, "sfdv": cfg_v.distill_iters}, "batch": cfg.batch,
            "teacher": "retrained" if args.train_teacher else str(TEACHER.relative_to(PROJECT))}


def run_toy(args, device) -> dict:
    cfg = apply_overrides(Config(), load_config_file(PROJECT / TOY["config"]))
    cfg = dataclasses.replace(cfg, seed=args.seed, eval_samples=TOY["eval_samples"], ref_steps=TOY["ref_steps"],
                              total_kimg=TOY["total_kimg"], teacher_iters=TOY["teacher_iters"],
                              teacher_batch=TOY.get("teacher_batch", cfg.teacher_batch),
                              batch=TOY.get("batch", cfg.batch))
    out = args.out / "reproduce-toy2d"
    run = RunDir.create(out, "teacher")
    run.write_config(cfg, "sfd")
    seed_everything(cfg.seed)
    start = time.time()
    teacher = train_teacher(cfg, run, device, args.quiet).eval().requires_grad_(False)
    teacher_s = time.time() - start
    ev = make_eval_set(cfg, teacher, device)
    rows, times = [reference_row(cfg, ev)], {}
    for nfe in TOY["nfes"]:
        rows += baseline_rows(cfg, teacher, ev, nfe)
        cfg_n = dataclasses.replace(cfg, num_steps=nfe + 2)
        model, times[f"SFD NFE {nfe}"] = student(cfg_n, teacher, out, f"sfd-nfe{nfe}", device, args.quiet)
        rows.append({**student_row(cfg_n, model, ev, nfe, "SFD"), "distill_s": times[f"SFD NFE {nfe}"]})
        if nfe == 2:
            figure(cfg_n, teacher, model, ev, 2, args.results / "toy2d_samples_nfe2.png")
    ablation_rows = []
    for label, overrides in ABLATIONS[: TOY.get("n_ablations", len(ABLATIONS))]:
        cfg_a = dataclasses.replace(cfg, **overrides)
        if not overrides:
            ablation_rows.append({**next(r for r in rows if r["method"] == "SFD" and r["nfe"] == 2), "method": label})
            continue
        model, secs = student(cfg_a, teacher, out, "ablation", device, args.quiet)
        ablation_rows.append({**student_row(cfg_a, model, ev, 2, label, afs=cfg_a.afs), "distill_s": secs})
    print(format_table(cfg, rows))
    print(format_table(cfg, ablation_rows))
    return {"tables": {"main": table(cfg, rows, ("distill_s",)),
                       "ablations": table(cfg, ablation_rows, ("distill_s",))},
            "rows": rows, "ablation_rows": ablation_rows, "distill_seconds": times, "teacher_seconds": teacher_s,
            "config": dataclasses.asdict(cfg), "iterations": cfg.distill_iters, "batch": cfg.batch}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--experiment", choices=["all", "digits", "toy2d"], default="all")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    parser.add_argument("--out", type=Path, default=Path("runs"), help="parent of the students' run folders")
    parser.add_argument("--results", type=Path, default=PROJECT / "results")
    parser.add_argument("--train-teacher", action="store_true", help="digits: retrain the teacher here")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (seconds), for tests; results not meaningful")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads for torch (default 1: the committed results were made with 1)")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    if args.smoke:
        DIGITS.update(SMOKE, classifier_steps=30)
        TOY.update(SMOKE, n_ablations=2)
    torch.set_num_threads(args.threads)
    device = select_device(args.device)
    for name, fn in (("digits", run_digits), ("toy2d", run_toy)):
        if args.experiment not in ("all", name):
            continue
        start = time.time()
        result = fn(args, device)
        command = ("uv run reproduce.py --experiment " + name + (" --train-teacher" if args.train_teacher else "")
                   + (f" --threads {args.threads}" if args.threads != 1 else ""))
        result.update({"seeds": [args.seed], "versions": package_versions("sfd", "diffusers"),
                       "wall_time_s": round(time.time() - start, 1), "command": command, "device": str(device),
                       "threads": torch.get_num_threads()})
        args.results.mkdir(parents=True, exist_ok=True)
        RunDir(args.results).write_json(f"{name}.json", result)
        print(f"wrote {args.results / f'{name}.json'} ({result['wall_time_s']:.0f} s)")


if __name__ == "__main__":
    main()
