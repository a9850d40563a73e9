"""Evaluate a run folder of train.py: sample with the SFD student and the training-free solvers at any NFE.

    uv run eval.py --run runs/<run>                 # the NFE(s) the student was trained for
    uv run eval.py --run runs/<run> --nfe 2 3 4 5   # SFD-v students serve any NFE they were trained on
    uv run eval.py --run runs/<run> eval_samples=5000
    uv run eval.py --run runs/<cifar10 run> --data-root ~/data/cifar10 inception_path=~/inception-2015-12-05.pt

Writes ``<run>/eval.json`` (every figure) and a figure: a sample grid (digits) or a scatter plot (2-D ring).
Offline datasets are scored with the sliced Wasserstein distance (2-D) or a Fréchet distance in the features of a
digits classifier (not FID); cifar10 with FID proper when the Inception detector is supplied.
"""

from __future__ import annotations

import dataclasses
import os
import sys

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from shared.runs import RunDir, load_modules, select_device  # noqa: E402
from shared.runs.cli import _parse_pairs, apply_overrides, build_parser  # noqa: E402
from sfd.config import Config, build_denoiser  # noqa: E402
from sfd.data import Cifar10Root  # noqa: E402
from sfd.distill import student_sample  # noqa: E402
from sfd.evaluation import InceptionFID, to_uint8  # noqa: E402
from sfd.pipeline import (baseline_rows, format_table, load_teacher, make_eval_set,  # noqa: E402
                          reference_row, student_row)
from sfd.solvers import polynomial_schedule, sample  # noqa: E402


def parse(argv):
    parser = build_parser(Config, __doc__.split("\n")[0])
    parser.add_argument("--run", required=True, help="run folder written by train.py")
    parser.add_argument("--nfe", type=int, nargs="+", default=None, help="NFEs to evaluate (default: trained ones)")
    args = parser.parse_args(argv)
    run = RunDir.open(args.run)
    try:
        cfg = run.read_config(Config)
        flags = {"device": args.device, "data_root": args.data_root}
        cfg = apply_overrides(cfg, {**{k: v for k, v in flags.items() if v is not None}, **_parse_pairs(args.overrides)})
    except ValueError as err:
        parser.error(str(err))
    return cfg, args, run


def load_student(cfg: Config, run: RunDir, device: torch.device) -> torch.nn.Module:
    path = run.checkpoints / "student.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"'{path}' not found: the run has not finished distillation (resume it with "
                                f"`uv run train.py --resume {run.path}`)")
    if cfg.dataset == "cifar10":
        student = load_teacher(cfg, device)
        load_modules(path, {"student": student})
    else:
        student = build_denoiser(cfg, step_condition=cfg.step_condition)
        load_modules(path, {"student": student})
    return student.to(device).eval().requires_grad_(False)


def trained_nfes(cfg: Config) -> list[int]:
    steps = cfg.step_choices if cfg.step_condition else (cfg.num_steps,)
    return [n - 1 - int(cfg.afs) for n in steps]


def fid_eval(cfg: Config, student, device, nfes, run: RunDir) -> list[dict]:
    """Paper-scale evaluation: FID of ``eval_samples`` student samples against the CIFAR-10 training set."""
    if cfg.inception_path is None:
        raise ValueError("cifar10 evaluation needs inception_path=<inception-2015-12-05.pt> (TorchScript detector)")
    fid = InceptionFID(cfg.inception_path, device)
    ref = fid.reference_stats(Cifar10Root(cfg.data_root).images("train"))
    rows = []
    for nfe in nfes:
        gen = torch.Generator().manual_seed(0)
        images = []
        for i in range(0, cfg.eval_samples, 500):
            n = min(500, cfg.eval_samples - i)
            x_T = torch.randn((n, 3, 32, 32), generator=gen).to(device) * cfg.sigma_max
            images.append(to_uint8(student_sample(student, x_T, nfe + 1 + int(cfg.afs), cfg.schedule, cfg.afs)))
        rows.append({"method": "SFD-v" if cfg.step_condition else "SFD", "nfe": nfe,
                     "fid": fid.fid(np.concatenate(images), ref)})
    run.write_json("eval.json", {"rows": rows, "n_samples": cfg.eval_samples})
    return rows


def figure(cfg: Config, teacher, student, ev, nfe: int, path) -> None:
    """Digits: a grid of samples per sampler from the same noise. 2-D: scatter plots."""
    t_euler = polynomial_schedule(nfe + 1, cfg.sigma_min, cfg.sigma_max, cfg.rho)
    t_dpm = polynomial_schedule(nfe + 2, cfg.sigma_min, cfg.sigma_max, cfg.rho)
    x_T = ev.x_T[:64]
    with torch.no_grad():
        panels = {
            f"teacher (Heun, {2 * (cfg.ref_steps - 1)} NFE)": ev.reference[:64],
            f"Euler / DDIM, NFE {nfe}": sample("euler", lambda x, t: teacher(x, t), x_T, t_euler),
            f"DPM++(3M)+AFS, NFE {nfe}": sample("dpmpp", lambda x, t: teacher(x, t), x_T, t_dpm, afs=True,
                                                thresholding=cfg.thresholding),
            f"SFD{'-v' if cfg.step_condition else ''}, NFE {nfe}": student_sample(student, x_T, nfe + 1 + int(cfg.afs),
                                                                               cfg.schedule, cfg.afs),
        }
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.4))
    for ax, (title, imgs) in zip(axes, panels.items()):
        if cfg.dataset == "toy2d":
            ref = ev.real[:2000].cpu()
            ax.scatter(ref[:, 0], ref[:, 1], s=1, c="lightgray")
            pts = imgs.cpu()
            ax.scatter(pts[:, 0], pts[:, 1], s=4)
            ax.set_xlim(-2.5, 2.5)
            ax.set_ylim(-2.5, 2.5)
        else:
            grid = imgs.clamp(-1, 1).cpu().reshape(8, 8, 8, 8).permute(0, 2, 1, 3).reshape(64, 64)
            ax.imshow(grid, cmap="gray", vmin=-1, vmax=1)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> list[dict]:
    cfg, args, run = parse(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
    device = select_device(cfg.device)
    nfes = args.nfe or trained_nfes(cfg)
    student = load_student(cfg, run, device)
    if cfg.dataset == "cifar10":
        rows = fid_eval(cfg, student, device, nfes, run)
        print("\n".join(f"{r['method']} NFE {r['nfe']}: FID {r['fid']:.2f}" for r in rows))
        return rows
    teacher = load_teacher(dataclasses.replace(cfg, teacher_path=str(run.path), second_stage=False), device)
    ev = make_eval_set(cfg, teacher, device)
    rows = [reference_row(cfg, ev)]
    for nfe in nfes:
        rows += baseline_rows(cfg, teacher, ev, nfe)
        rows.append(student_row(cfg, student, ev, nfe, "SFD-v" if cfg.step_condition else "SFD", afs=cfg.afs))
    run.write_json("eval.json", {"rows": rows, "n_samples": cfg.eval_samples, "nfe": nfes,
                                 "digits_classifier_accuracy": ev.classifier_acc})
    figure(cfg, teacher, student, ev, nfes[0], run.path / f"samples_nfe{nfes[0]}.png")
    print(format_table(cfg, rows))
    print(f"wrote {run.path / 'eval.json'} and {run.path / f'samples_nfe{nfes[0]}.png'}")
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
