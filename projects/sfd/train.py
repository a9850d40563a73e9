"""Train (or reuse) an EDM teacher on the offline default, distil it with SFD, and print the comparison table.

    uv run train.py                                # digits: teacher + 2-NFE SFD student (~10 min on CPU)
    uv run train.py --config configs/toy2d.yaml    # the 2-D ring
    uv run train.py teacher_path=runs/<run>        # reuse that run's teacher
    uv run train.py step_condition=true            # SFD-v: one student for NFE 2–5
    uv run train.py --smoke                        # seconds (tests)

Stages (Zhou et al. 2024, "Simple and Fast Distillation of Diffusion Models", Sec. 4):
1. teacher: an EDM-preconditioned network trained with the EDM loss (offline defaults only; ``dataset=cifar10``
   loads a diffusers DDPM checkpoint instead);
2. SFD: the student, a copy of the teacher, learns to reproduce the DPM-Solver++(3M) teacher trajectory with
   Euler (+ AFS) steps at the sampling timestamps only, one optimiser step per student step (``sfd.distill``);
3. evaluation: the teacher at ~200 NFE, training-free solvers and the student at the same NFE, same noise.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import sys
import time
from pathlib import Path

import torch

from shared.runs import RunDir, parse_args, progress, seed_everything, select_device
from shared.runs.cli import build_parser
from sfd.config import Config, build_denoiser, raw_net_builder
from sfd.data import data_shape, training_data
from sfd.distill import lr_at, sfd_iteration, teacher_trajectory
from sfd.losses import edm_loss
from sfd.networks import student_from_teacher
from sfd.pipeline import (baseline_rows, format_table, load_teacher, make_eval_set, reference_row, student_row)

CPU_CONFIG = Path(__file__).resolve().parent / "configs" / "cpu.yaml"  # used when --config is not given
SMOKE = {"teacher_path": None, "teacher_iters": 20, "teacher_batch": 64, "width": 32, "batch": 16, "total_kimg": 0.064,
         "eval_samples": 128, "ref_steps": 6, "ckpt_every": 2, "classifier_steps": 30}


def parse(argv: list[str] | None = None):
    parser = build_parser(Config, __doc__.split("\n")[0])
    parser.set_defaults(config=CPU_CONFIG)
    return parse_args(Config, argv, parser=parser, smoke=SMOKE)


# ---- stage 1: the teacher -----------------------------------------------------------------------------
def train_teacher(cfg: Config, run: RunDir, device: torch.device, quiet: bool) -> torch.nn.Module:
    """EDM training (Karras et al. 2022, Eq. 2) with an EMA of the weights; returns the frozen EMA network."""
    data = training_data(cfg.dataset, cfg.seed).to(device)
    net = build_denoiser(cfg).to(device).train()
    ema = copy.deepcopy(net).eval().requires_grad_(False)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.teacher_lr)
    start = 0
    if (run.checkpoints / "teacher_last.safetensors").is_file():
        start = run.load_checkpoint("teacher_last", {"net": net, "ema": ema}, optimizers={"opt": opt})["iter"]
        run.rewind_metrics(start - 1, key="step")
        run.log(f"resumed teacher training at iteration {start}", quiet=quiet)
    for it in progress(range(start, cfg.teacher_iters), total=cfg.teacher_iters, initial=start,
                       desc="teacher", quiet=quiet):
        # cosine decay from teacher_lr to teacher_lr / 5
        lr = cfg.teacher_lr * (0.2 + 0.8 * 0.5 * (1 + math.cos(math.pi * it / cfg.teacher_iters)))
        for group in opt.param_groups:
            group["lr"] = lr
        batch = data[torch.randint(len(data), (cfg.teacher_batch,), device=device)]
        loss = edm_loss(net, batch, cfg.p_mean, cfg.p_std)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            for p_ema, p in zip(ema.parameters(), net.parameters()):
                p_ema.lerp_(p, 1 - cfg.teacher_ema)
        if it % 100 == 0 or it == cfg.teacher_iters - 1:
            run.log_metrics(phase="teacher", step=it, loss=float(loss.detach()), lr=lr)
        if (it + 1) % (10 * cfg.ckpt_every) == 0:
            run.save_checkpoint("teacher_last", {"net": net, "ema": ema}, optimizers={"opt": opt},
                                state={"iter": it + 1})
    run.save_checkpoint("teacher", {"teacher": ema}, state={"iter": cfg.teacher_iters})
    return ema


# ---- stage 2: SFD ------------------------------------------------------------------------------------
def distill(cfg: Config, teacher: torch.nn.Module, run: RunDir, device: torch.device, quiet: bool) -> torch.nn.Module:
    """SFD / SFD-v fine-tuning of a copy of the teacher (official ``training_loop.py``)."""
    build = raw_net_builder(cfg) if cfg.step_condition else None
    student = student_from_teacher(teacher, build, cfg.step_condition).to(device).train().requires_grad_(True)
    opt = torch.optim.Adam(student.parameters(), lr=cfg.lr, betas=(0.9, 0.999), eps=1e-8)
    solver_kwargs = {"max_order": cfg.max_order, "thresholding": cfg.thresholding} if cfg.teacher_solver == "dpmpp" else {}
    perceptual = None
    if cfg.lpips_path is not None:
        from sfd.lpips import LPIPS

        perceptual = LPIPS.from_files(cfg.lpips_path).to(device)
    total, start = cfg.distill_iters, 0
    if (run.checkpoints / "last.safetensors").is_file():
        start = run.load_checkpoint("last", {"student": student}, optimizers={"opt": opt})["iter"]
        run.rewind_metrics(start - 1, key="iteration")  # teacher rows have no "iteration": they are kept
        run.log(f"resumed distillation at iteration {start}", quiet=quiet)
    shape = data_shape(cfg.dataset)
    for it in progress(range(start, total), total=total, initial=start, desc="SFD", quiet=quiet):
        for group in opt.param_groups:
            group["lr"] = lr_at(it, total, cfg.lr)
        num_steps = cfg.num_steps
        if cfg.step_condition:  # SFD-v: a new step count (and schedule) every iteration
            num_steps = cfg.step_choices[int(torch.randint(len(cfg.step_choices), ()))]
        x_T = torch.randn((cfg.batch, *shape), device=device) * cfg.sigma_max
        traj = teacher_trajectory(teacher, x_T, num_steps, cfg.M, cfg.schedule, cfg.teacher_solver,
                                  afs=cfg.teacher_afs, **solver_kwargs)
        losses = sfd_iteration(student, opt, traj, cfg.schedule.student(num_steps), afs=cfg.afs, metric=cfg.loss,
                               global_view=cfg.global_view, perceptual=perceptual)
        run.log_metrics(phase="sfd", iteration=it, loss=sum(losses), step_losses=losses, num_steps=num_steps,
                        lr=opt.param_groups[0]["lr"])
        if (it + 1) % cfg.ckpt_every == 0 and it + 1 < total:
            run.save_checkpoint("last", {"student": student}, optimizers={"opt": opt}, state={"iter": it + 1})
    run.save_checkpoint("student", {"student": student}, state={"iter": total})
    return student.eval().requires_grad_(False)


# ---- stage 3: evaluation -----------------------------------------------------------------------------
def evaluate(cfg: Config, teacher, student, run: RunDir, device: torch.device) -> list[dict]:
    ev = make_eval_set(cfg, teacher, device)
    nfes = [n - 1 - int(cfg.afs) for n in cfg.step_choices] if cfg.step_condition else [cfg.num_steps - 1 - int(cfg.afs)]
    rows = [reference_row(cfg, ev)]
    for nfe in nfes:
        rows += baseline_rows(cfg, teacher, ev, nfe)
        rows.append(student_row(cfg, student, ev, nfe, "SFD-v" if cfg.step_condition else "SFD", afs=cfg.afs))
    run.write_json("eval.json", {"rows": rows, "n_samples": cfg.eval_samples,
                                 "digits_classifier_accuracy": ev.classifier_acc})
    return rows


def main(argv: list[str] | None = None) -> dict:
    cfg, args = parse(argv)
    cfg.validate()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
    device = select_device(cfg.device)
    if args.resume is not None:
        run = RunDir.open(args.resume)
        cfg = run.read_config(Config)
        run.log(f"resuming {run.path}", quiet=args.quiet)
    else:
        seed_everything(cfg.seed, args.deterministic)
        tag = f"{cfg.dataset}-{'sfdv' if cfg.step_condition else 'sfd'}-n{cfg.num_steps}" + ("-smoke" if args.smoke else "")
        run = RunDir.create(args.out, tag)
        run.write_config(cfg, "sfd")
        run.log(f"run folder: {run.path}", quiet=args.quiet)
    start = time.time()

    if cfg.teacher_path is not None:  # a diffusers DDPM, another run's teacher, or (second stage) its student
        teacher = load_teacher(cfg, device)
        if cfg.dataset != "cifar10":  # keep a copy so that eval.py needs only this run folder
            run.save_checkpoint("teacher", {"teacher": teacher}, state={"source": cfg.teacher_path})
        run.log(f"teacher loaded from {cfg.teacher_path}", quiet=args.quiet)
    elif (run.checkpoints / "teacher.safetensors").is_file():  # resuming after the teacher stage
        teacher = load_teacher(dataclasses.replace(cfg, teacher_path=str(run.path), second_stage=False), device)
    else:
        teacher = train_teacher(cfg, run, device, args.quiet).eval().requires_grad_(False)
        run.log(f"teacher trained in {time.time() - start:.0f} s", quiet=args.quiet)
    t_teacher = time.time() - start

    student = distill(cfg, teacher, run, device, args.quiet)
    t_distill = time.time() - start - t_teacher
    run.log(f"SFD distillation ({cfg.distill_iters} iterations x {cfg.batch}) took {t_distill:.0f} s", quiet=args.quiet)

    if cfg.dataset == "cifar10":
        run.log("cifar10: score FID with `uv run eval.py <run> --data-root ... inception_path=...`", quiet=args.quiet)
        return {"run": str(run.path)}
    rows = evaluate(cfg, teacher, student, run, device)
    run.log(format_table(cfg, rows), quiet=args.quiet)
    metric = "swd_data" if cfg.dataset == "toy2d" else "fd_data"
    head = rows[-1]
    run.log(f"run folder: {run.path}\nheadline: {head['method']} at NFE {head['nfe']}: {metric} = {head[metric]:.4f} "
            f"(teacher reference {rows[0][metric]:.4f}); distillation {t_distill:.0f} s", quiet=args.quiet)
    return {"run": str(run.path), "rows": rows, "teacher_s": t_teacher, "distill_s": t_distill}


if __name__ == "__main__":
    main(sys.argv[1:])
