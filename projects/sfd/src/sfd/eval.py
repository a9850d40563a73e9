"""Evaluate a run folder of train.py: sample with the SFD student and the training-free solvers at any NFE.

    uv run eval.py runs/<run>                       # the NFE(s) the student was trained for
    uv run eval.py runs/<run> --nfe 2 3 4 5         # SFD-v students serve any NFE they were trained on
    uv run eval.py runs/<run> eval_samples=5000
    uv run eval.py runs/<cifar10 run> --data-root ~/data/cifar10 inception_path=~/inception-2015-12-05.pt

Writes ``eval.json["eval"]`` inside the run folder (every figure, with the evaluated checkpoint) and a figure:
a sample grid (digits) or a scatter plot (2-D ring). Offline datasets are scored with the sliced Wasserstein
distance (2-D) or a Fréchet distance in the features of a digits classifier (not FID); cifar10 with FID proper
when the Inception detector is supplied. Writes only inside the run folder.
"""

from __future__ import annotations

import dataclasses
import sys

import numpy as np
import torch

from sfd.config import Config, build_denoiser
from sfd.data import Cifar10Root
from sfd.distill import student_sample
from sfd.evaluation import InceptionFID, to_uint8
from sfd.pipeline import baseline_rows, format_table, load_teacher, make_eval_set, reference_row, student_row
from sfd.solvers import polynomial_schedule, sample
from shared.runs import UsageError, apply_overrides, build_eval_parser, entrypoint, open_run, progress
from shared.runs.cli import _parse_pairs

EVAL_FIELDS = ("eval_samples", "ref_steps", "classifier_steps", "data_root", "inception_path")


def build_argument_parser():
    parser = build_eval_parser(__doc__.split("\n")[0])
    parser.epilog = f"key=value evaluation settings (anywhere on the line): {', '.join(EVAL_FIELDS)}"
    parser.add_argument("--nfe", type=int, nargs="+", default=None, help="NFEs to evaluate (default: trained ones)")
    parser.add_argument("--data-root", type=str, default=None, help="cifar10: the FID reference images")
    return parser


def split_pairs(argv: list[str]) -> tuple[list[str], list[str]]:
    """``key=value`` settings and the other arguments of the command line."""
    pairs = [a for a in argv if "=" in a and not a.startswith("-")]
    return pairs, [a for a in argv if a not in pairs]


def eval_config(cfg: Config, args, overrides: list[str]) -> Config:
    """The run's config with this command's evaluation settings on top (only the fields in EVAL_FIELDS)."""
    pairs = _parse_pairs(overrides)
    bad = sorted(set(pairs) - set(EVAL_FIELDS))
    if bad:
        raise UsageError(f"eval.py cannot change {', '.join(bad)} (the run was trained with them); it accepts "
                         f"{', '.join(EVAL_FIELDS)}")
    if args.data_root is not None:
        pairs["data_root"] = args.data_root
    return apply_overrides(cfg, pairs)


def trained_nfes(cfg: Config) -> list[int]:
    steps = cfg.step_choices if cfg.step_condition else (cfg.num_steps,)
    return [n - 1 - int(cfg.afs) for n in steps]


def fid_eval(cfg: Config, student, device, nfes, quiet: bool = False) -> list[dict]:
    """Paper-scale evaluation: FID of ``eval_samples`` student samples against the CIFAR-10 training set."""
    if cfg.inception_path is None:
        raise ValueError("cifar10 evaluation needs inception_path=<inception-2015-12-05.pt> (TorchScript detector)")
    fid = InceptionFID(cfg.inception_path, device)
    ref = fid.reference_stats(Cifar10Root(cfg.data_root).images("train"))
    rows = []
    for nfe in nfes:
        gen = torch.Generator().manual_seed(0)
        images = []
        for i in progress(range(0, cfg.eval_samples, 500), desc=f"FID samples, NFE {nfe}", quiet=quiet):
            n = min(500, cfg.eval_samples - i)
            x_T = torch.randn((n, 3, 32, 32), generator=gen).to(device) * cfg.sigma_max
            images.append(to_uint8(student_sample(student, x_T, nfe + 1 + int(cfg.afs), cfg.schedule, cfg.afs)))
        rows.append({"method": "SFD-v" if cfg.step_condition else "SFD", "nfe": nfe,
                     "fid": fid.fid(np.concatenate(images), ref)})
    return rows


def figure(cfg: Config, teacher, student, ev, nfe: int, path) -> None:
    """Digits: a grid of samples per sampler from the same noise. 2-D: scatter plots."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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


@entrypoint
@torch.no_grad()
def main(argv: list[str] | None = None) -> list[dict]:
    overrides, argv = split_pairs(list(sys.argv[1:] if argv is None else argv))
    ev_run = open_run(Config, argv, parser=build_argument_parser())
    run, device, quiet = ev_run.run, ev_run.device, ev_run.args.quiet
    try:
        cfg = eval_config(ev_run.cfg, ev_run.args, overrides)
    except ValueError as err:
        raise UsageError(str(err)) from err
    nfes = ev_run.args.nfe or trained_nfes(cfg)
    if cfg.dataset == "cifar10":
        student = load_teacher(cfg, device)
    else:
        student = build_denoiser(cfg, step_condition=cfg.step_condition).to(device)
    ev_run.load({"student": student})
    student.eval().requires_grad_(False)
    if cfg.dataset == "cifar10":
        rows = fid_eval(cfg, student, device, nfes, quiet)
        ev_run.save({"rows": rows, "n_samples": cfg.eval_samples, "nfe": nfes})
        ev_run.log("\n".join(f"{r['method']} NFE {r['nfe']}: FID {r['fid']:.2f}" for r in rows))
        return rows
    teacher = load_teacher(dataclasses.replace(cfg, teacher_path=str(run.path), second_stage=False), device)
    ev = make_eval_set(cfg, teacher, device, quiet=quiet)
    rows = [reference_row(cfg, ev)]
    for nfe in progress(nfes, desc="NFE", quiet=quiet or len(nfes) == 1):
        rows += baseline_rows(cfg, teacher, ev, nfe)
        rows.append(student_row(cfg, student, ev, nfe, "SFD-v" if cfg.step_condition else "SFD", afs=cfg.afs))
    path = ev_run.save({"rows": rows, "n_samples": cfg.eval_samples, "nfe": nfes,
                        "digits_classifier_accuracy": ev.classifier_acc})
    figure(cfg, teacher, student, ev, nfes[0], run.path / f"samples_nfe{nfes[0]}.png")
    ev_run.log(format_table(cfg, rows))
    ev_run.log(f"wrote {path} and {run.path / f'samples_nfe{nfes[0]}.png'}")
    return rows


if __name__ == "__main__":
    main()
