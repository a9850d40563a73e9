"""Train (or reuse) an EDM teacher on the offline default, distil it with SFD, and print the comparison table.

    uv run train.py                                # digits: teacher + 2-NFE SFD student (~10 min on CPU)
    uv run train.py --config configs/toy2d.yaml    # the 2-D ring
    uv run train.py teacher_path=runs/<run>        # reuse that run's teacher
    uv run train.py step_condition=true            # SFD-v: one student for NFE 2–5
    uv run train.py --smoke                        # seconds (tests)
    uv run train.py --resume runs/<run>            # continue a killed run where it stopped

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
import time
from pathlib import Path

import torch

from sfd.config import Config, build_denoiser, raw_net_builder
from sfd.data import data_shape, training_data
from sfd.distill import lr_at, sfd_iteration, teacher_trajectory
from sfd.losses import edm_loss
from sfd.networks import student_from_teacher
from sfd.pipeline import baseline_rows, format_table, load_teacher, make_eval_set, reference_row, student_row
from shared.runs import RunDir, UsageError, entrypoint, guard_finite, progress, start

PROJECT = Path(__file__).resolve().parents[2]
CPU_CONFIG = PROJECT / "configs" / "cpu.yaml"  # used when --config is not given
# tiny budgets; the teacher stays the config's (the committed digits teacher by default, so that --smoke runs
# the default path and prints what the README quotes)
SMOKE = {"teacher_iters": 20, "teacher_batch": 64, "batch": 16, "total_kimg": 0.064, "eval_samples": 128,
         "ref_steps": 6, "ckpt_every": 2, "classifier_steps": 30}


def has_set(run: RunDir, name: str) -> bool:
    """Whether checkpoint set ``name`` was ever written (complete or not): a torn set must fail loudly on load
    (``CheckpointError``, exit 2), not be taken for a missing one and silently start over."""
    return (run.checkpoints / name).exists() or (run.checkpoints / f"{name}.prev").exists()


def check_inputs(cfg: Config, args) -> None:
    """Everything that can be checked before the run folder exists (exit 2 with the message otherwise)."""
    try:
        cfg.validate()
        if cfg.teacher_path is not None:
            load_teacher(cfg, torch.device("cpu"))  # exists, is a run/safetensors/diffusers folder, fits
    except (ValueError, FileNotFoundError, OSError) as err:
        raise UsageError(str(err)) from err


# ---- stage 1: the teacher -----------------------------------------------------------------------------
def train_teacher(cfg: Config, run: RunDir, device: torch.device, quiet: bool) -> torch.nn.Module:
    """EDM training (Karras et al. 2022, Eq. 2) with an EMA of the weights; returns the frozen EMA network."""
    data = training_data(cfg.dataset, cfg.seed).to(device)
    net = build_denoiser(cfg).to(device).train()
    ema = copy.deepcopy(net).eval().requires_grad_(False)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.teacher_lr)
    done = 0
    if has_set(run, "teacher_last"):
        done = run.load_checkpoint("teacher_last", {"net": net, "ema": ema}, optimizers={"opt": opt})["step"]
        run.rewind_metrics(done - 1, key="step")
        run.log(f"resumed teacher training at iteration {done}", quiet=quiet)
    for it in progress(range(done, cfg.teacher_iters), total=cfg.teacher_iters, initial=done,
                       desc="teacher", quiet=quiet):
        # cosine decay from teacher_lr to teacher_lr / 5
        lr = cfg.teacher_lr * (0.2 + 0.8 * 0.5 * (1 + math.cos(math.pi * it / cfg.teacher_iters)))
        for group in opt.param_groups:
            group["lr"] = lr
        batch = data[torch.randint(len(data), (cfg.teacher_batch,), device=device)]
        loss = edm_loss(net, batch, cfg.p_mean, cfg.p_std)
        guard_finite(f"{it} of teacher training", loss=loss)
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
                                state={"step": it + 1})
    run.save_checkpoint("teacher", {"teacher": ema}, state={"step": cfg.teacher_iters, "source": "trained here"})
    return ema


# ---- stage 2: SFD ------------------------------------------------------------------------------------
def distill(cfg: Config, teacher: torch.nn.Module, run: RunDir, device: torch.device, quiet: bool) -> torch.nn.Module:
    """SFD / SFD-v fine-tuning of a copy of the teacher (official ``training_loop.py``).

    The student is saved as the checkpoint set ``last`` every ``ckpt_every`` iterations and at the end.
    """
    build = raw_net_builder(cfg) if cfg.step_condition else None
    student = student_from_teacher(teacher, build, cfg.step_condition).to(device).train().requires_grad_(True)
    opt = torch.optim.Adam(student.parameters(), lr=cfg.lr, betas=(0.9, 0.999), eps=1e-8)
    solver_kwargs = ({"max_order": cfg.max_order, "thresholding": cfg.thresholding}
                     if cfg.teacher_solver == "dpmpp" else {})
    perceptual = None
    if cfg.lpips_path is not None:
        from sfd.lpips import LPIPS

        perceptual = LPIPS.from_files(cfg.lpips_path).to(device)
    total, done = cfg.distill_iters, 0
    if has_set(run, "last"):
        done = run.load_checkpoint("last", {"student": student}, optimizers={"opt": opt})["step"]
        run.rewind_metrics(done - 1, key="iteration")  # teacher rows have no "iteration": they are kept
        run.log(f"resumed distillation at iteration {done}", quiet=quiet)
    shape = data_shape(cfg.dataset)
    for it in progress(range(done, total), total=total, initial=done, desc="SFD", quiet=quiet):
        for group in opt.param_groups:
            group["lr"] = lr_at(it, total, cfg.lr)
        num_steps = cfg.num_steps
        if cfg.step_condition:  # SFD-v: a new step count (and schedule) every iteration
            num_steps = cfg.step_choices[int(torch.randint(len(cfg.step_choices), ()))]
        x_T = torch.randn((cfg.batch, *shape), device=device) * cfg.sigma_max
        traj = teacher_trajectory(teacher, x_T, num_steps, cfg.M, cfg.schedule, cfg.teacher_solver,
                                  afs=cfg.teacher_afs, **solver_kwargs)
        losses = sfd_iteration(student, opt, traj, cfg.schedule.student(num_steps), afs=cfg.afs, metric=cfg.loss,
                               global_view=cfg.global_view, perceptual=perceptual, iteration=it)
        run.log_metrics(phase="sfd", iteration=it, loss=sum(losses), step_losses=losses, num_steps=num_steps,
                        lr=opt.param_groups[0]["lr"])
        if (it + 1) % cfg.ckpt_every == 0 or it + 1 == total:
            run.save_checkpoint("last", {"student": student}, optimizers={"opt": opt}, state={"step": it + 1})
    return student.eval().requires_grad_(False)


# ---- stage 3: evaluation -----------------------------------------------------------------------------
def evaluate(cfg: Config, teacher, student, device: torch.device, quiet: bool) -> tuple[list[dict], dict]:
    ev = make_eval_set(cfg, teacher, device, quiet=quiet)
    steps = cfg.step_choices if cfg.step_condition else (cfg.num_steps,)
    nfes = [n - 1 - int(cfg.afs) for n in steps]
    rows = [reference_row(cfg, ev)]
    for nfe in nfes:
        rows += baseline_rows(cfg, teacher, ev, nfe)
        rows.append(student_row(cfg, student, ev, nfe, "SFD-v" if cfg.step_condition else "SFD", afs=cfg.afs))
    return rows, {"n_samples": cfg.eval_samples, "digits_classifier_accuracy": ev.classifier_acc}


@entrypoint
def main(argv: list[str] | None = None) -> dict:
    s = start(Config, argv, default_config=CPU_CONFIG, smoke=SMOKE, description=__doc__.split("\n")[0],
              tag=lambda c: f"{c.dataset}-{'sfdv' if c.step_condition else 'sfd'}-n{c.num_steps}",
              uses_data_root=lambda c: c.dataset == "cifar10", data_root_hint="dataset=cifar10 (FID reference)",
              check=check_inputs, packages=("sfd",))
    cfg, run, device, quiet = s.cfg, s.run, s.device, s.args.quiet
    s.log(f"run folder: {run.path}")
    began = time.time()

    if has_set(run, "teacher"):  # resuming after the teacher stage
        teacher = load_teacher(dataclasses.replace(cfg, teacher_path=str(run.path), second_stage=False), device)
        s.log("teacher reused from the run's checkpoints/teacher")
    elif cfg.teacher_path is not None:  # a diffusers DDPM, another run's teacher, or (second stage) its student
        teacher = load_teacher(cfg, device)
        if cfg.dataset != "cifar10":  # keep a copy so that eval.py needs only this run folder
            run.save_checkpoint("teacher", {"teacher": teacher}, state={"source": cfg.teacher_path})
        s.log(f"teacher loaded from {cfg.teacher_path}")
    else:
        teacher = train_teacher(cfg, run, device, quiet).eval().requires_grad_(False)
        s.log(f"teacher trained in {time.time() - began:.0f} s ({cfg.teacher_iters} iterations)")
    t_teacher = time.time() - began

    student = distill(cfg, teacher, run, device, quiet)
    t_distill = time.time() - began - t_teacher
    s.log(f"SFD distillation ({cfg.distill_iters} iterations x {cfg.batch} trajectories) took {t_distill:.0f} s")

    if cfg.dataset == "cifar10":
        run.finish({"distill_s": t_distill})
        s.log(f"run folder: {run.path}")
        s.log(f"cifar10: score FID with `uv run eval.py {run.path} --data-root ... inception_path=...`")
        return {"run": str(run.path)}
    rows, extra = evaluate(cfg, teacher, student, device, quiet)
    run.finish({"rows": rows, **extra, "teacher_s": t_teacher, "distill_s": t_distill,
                "threads": torch.get_num_threads()})
    s.log(format_table(cfg, rows))
    metric = "swd_data" if cfg.dataset == "toy2d" else "fd_data"
    head = rows[-1]
    s.log(f"run folder: {run.path}")
    s.log(f"headline: {head['method']} at NFE {head['nfe']}: {metric} = {head[metric]:.4f} "
          f"(teacher reference {rows[0][metric]:.4f}); distillation {t_distill:.0f} s")
    return {"run": str(run.path), "rows": rows, "teacher_s": t_teacher, "distill_s": t_distill}


if __name__ == "__main__":
    main()
