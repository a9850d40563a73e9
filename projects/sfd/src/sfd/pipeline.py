"""What train.py, eval.py and reproduce.py share: loading teachers/students from run folders, and the
comparison table (teacher at high NFE, training-free solvers and SFD students at equal NFE, same noise)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from sfd.config import Config, build_denoiser
from sfd.data import data_shape, digit_images, toy_points
from sfd.distill import denoiser_fn, student_sample
from sfd.evaluation import DigitsClassifier, digits_scores, toy_scores, train_digits_classifier
from sfd.networks import DiffusersVPDenoiser
from sfd.solvers import polynomial_schedule, sample
from shared.runs import RunDir, load_modules

PROJECT = Path(__file__).resolve().parents[2]  # projects/sfd


def load_teacher(cfg: Config, device: torch.device) -> torch.nn.Module:
    """The frozen teacher named by ``cfg.teacher_path``: a diffusers DDPM folder (cifar10), a run folder of this
    project (its ``teacher`` checkpoint, or its ``student`` for the second stage) or a ``.safetensors`` file."""
    if cfg.dataset == "cifar10":
        teacher = DiffusersVPDenoiser.from_pretrained(cfg.teacher_path)
    else:
        path = Path(cfg.teacher_path).expanduser()
        if not path.is_absolute() and not path.exists() and (PROJECT / path).exists():
            path = PROJECT / path  # e.g. the committed results/digits_teacher/teacher.safetensors
        source = RunDir.open(path).read_config(Config) if path.is_dir() else cfg  # the architecture it was built with
        teacher = build_denoiser(source, step_condition=cfg.second_stage and source.step_condition)
        if path.is_dir():  # the run's teacher, or (second stage) its final student, the set "last"
            key, name = ("student", "last") if cfg.second_stage else ("teacher", "teacher")
            load_modules(RunDir.open(path).checkpoint_info(name).path, {key: teacher})
        elif path.suffix == ".safetensors":
            load_modules(path, {"teacher": teacher})
        else:
            raise FileNotFoundError(f"teacher_path '{path}' is neither a run folder nor a .safetensors file")
    return teacher.to(device).eval().requires_grad_(False)


@dataclass
class EvalSet:
    """Fixed noise, the teacher's high-NFE reference from that noise, and the real data to compare with."""

    x_T: torch.Tensor
    reference: torch.Tensor
    real: torch.Tensor
    classifier: DigitsClassifier | None = None
    classifier_acc: float | None = None


def make_eval_set(cfg: Config, teacher: torch.nn.Module, device: torch.device, n: int | None = None,
                  seed: int = 12345, quiet: bool = True) -> EvalSet:
    n = n or cfg.eval_samples
    gen = torch.Generator().manual_seed(seed)
    x_T = (torch.randn((n, *data_shape(cfg.dataset)), generator=gen, dtype=torch.float64) * cfg.sigma_max)
    x_T = x_T.float().to(device)
    t_ref = polynomial_schedule(cfg.ref_steps, cfg.sigma_min, cfg.sigma_max, cfg.rho)
    with torch.no_grad():
        reference = batched(lambda x: sample("heun", denoiser_fn(teacher), x, t_ref), x_T)
    if cfg.dataset == "toy2d":
        # as many true samples as generated ones: shared.metrics.sliced_wasserstein is fast (a sort) for equal sizes
        return EvalSet(x_T, reference, toy_points(n, seed=seed + 1).to(device))
    images, labels = digit_images()
    classifier, acc = train_digits_classifier(images, labels, steps=cfg.classifier_steps, quiet=quiet)
    return EvalSet(x_T, reference, images.to(device), classifier, acc)


def batched(fn, x: torch.Tensor, size: int = 1000) -> torch.Tensor:
    return torch.cat([fn(x[i:i + size]) for i in range(0, len(x), size)])


def score(cfg: Config, samples: torch.Tensor, ev: EvalSet) -> dict[str, float]:
    if cfg.dataset == "toy2d":
        return toy_scores(samples, ev.real, ev.reference)
    return digits_scores(samples, ev.real, ev.reference, ev.classifier)


@torch.no_grad()
def baseline_rows(cfg: Config, teacher: torch.nn.Module, ev: EvalSet, nfe: int) -> list[dict]:
    """Training-free solvers at ``nfe`` network calls on the same polynomial schedule, from the same noise."""
    rows = []
    for solver, afs, label in (("euler", False, "Euler (DDIM)"), ("euler", True, "Euler + AFS"),
                               ("dpmpp", False, "DPM-Solver++(3M)"), ("dpmpp", True, "DPM-Solver++(3M) + AFS")):
        t_steps = polynomial_schedule(nfe + 1 + int(afs), cfg.sigma_min, cfg.sigma_max, cfg.rho)
        kwargs = {"thresholding": cfg.thresholding, "max_order": cfg.max_order} if solver == "dpmpp" else {}
        out = batched(lambda x: sample(solver, denoiser_fn(teacher), x, t_steps, afs=afs, **kwargs), ev.x_T)
        rows.append({"method": label, "nfe": nfe, **score(cfg, out, ev)})
    return rows


@torch.no_grad()
def student_row(cfg: Config, student: torch.nn.Module, ev: EvalSet, nfe: int, label: str,
                afs: bool = True) -> dict:
    num_steps = nfe + 1 + int(afs)
    out = batched(lambda x: student_sample(student, x, num_steps, cfg.schedule, afs=afs), ev.x_T)
    return {"method": label, "nfe": nfe, **score(cfg, out, ev)}


def reference_row(cfg: Config, ev: EvalSet) -> dict:
    return {"method": f"Teacher (Heun, {cfg.ref_steps} steps)", "nfe": 2 * (cfg.ref_steps - 1),
            **score(cfg, ev.reference, ev)}


def metric_names(cfg: Config) -> tuple[str, ...]:
    if cfg.dataset == "toy2d":
        return ("swd_data", "swd_teacher", "l2_teacher")
    return ("fd_data", "fd_teacher", "l2_teacher")


def format_table(cfg: Config, rows: list[dict]) -> str:
    """The comparison as ``|``-separated lines (single spaces, so that its layout does not depend on the values)."""
    names = metric_names(cfg)
    lines = [" | ".join(["method", "NFE", *names])]
    for r in rows:
        lines.append(" | ".join([r["method"], str(r["nfe"]), *(f"{r[n]:.4f}" for n in names)]))
    return "\n".join(lines)
