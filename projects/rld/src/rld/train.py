"""Train a student with RLD or one of its baselines (CE, KD, DKD, LA, LR, RC) from a fixed teacher.

    uv run train.py                                  # offline default: digits, teacher trained here, RLD student
    uv run train.py --method kd teacher_error_rate=0.4
    uv run train.py --config configs/paper/resnet32x4_resnet8x4.yaml --data-root /data/cifar100
    uv run train.py --resume runs/<run>             # continue a killed run
    uv run train.py --help                          # every option and config field with its default

Without ``--config`` the offline default ``configs/cpu.yaml`` is used. The trainer logs, per epoch, the
test accuracy and the best test accuracy so far: the official code reports the *best* epoch (``best_acc``);
we report both and treat the last epoch as the headline on digits.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from rld.config import METHODS, Config
from rld.data import IndexedDataset, cifar100_datasets, digits_splits, imagenet_datasets, require_real_root
from rld.engine import TensorBatches, evaluate, make_optimizer, train_epoch
from rld.models import build_model
from rld.teachers import digits_teacher_logits, load_teacher_weights, train_digits_teacher
from shared.runs import RunDir, UsageError, build_parser, entrypoint, progress, start

PROJECT = Path(__file__).resolve().parents[2]
CPU_CONFIG = PROJECT / "configs" / "cpu.yaml"
NUM_CLASSES = {"digits": 10, "cifar100": 100, "imagenet": 1000}
SMOKE = {"epochs": 3, "teacher_epochs": 5, "max_steps_per_epoch": 2, "rld.warmup": 2, "dkd.warmup": 2}


def build_argument_parser():
    parser = build_parser(Config, "Train a student by RLD or a logit-distillation baseline. Without --config the "
                                  "offline default configs/cpu.yaml is used; the field defaults below are the "
                                  "official CIFAR-100 recipe.")
    parser.add_argument("--method", choices=METHODS, default=None, help="shortcut for method=...")
    return parser


def method_flag_to_override(argv: list[str]) -> list[str]:
    """``--method X`` / ``--method=X`` becomes the override ``method=X`` (validated by the parser first), placed
    beside the other ``key=value`` pairs (the parser reads them as one group)."""
    known, _ = build_argument_parser().parse_known_args(argv)
    if known.method is None:
        return argv
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--method":
            skip = True
        elif not arg.startswith("--method="):
            out.append(arg)
    pairs = [i for i, arg in enumerate(out) if "=" in arg and not arg.startswith("-")]
    at = pairs[-1] + 1 if pairs else len(out)
    return [*out[:at], f"method={known.method}", *out[at:]]


def has_set(run: RunDir, name: str) -> bool:
    """Whether checkpoint set ``name`` was ever written (complete or not): a torn set must fail loudly on load
    (``CheckpointError``, exit 2), not be taken for a missing one and silently start over."""
    return (run.checkpoints / name).exists() or (run.checkpoints / f"{name}.prev").exists()


def check_inputs(cfg: Config, args) -> None:
    """Everything that can be checked before the run folder exists."""
    if cfg.method not in METHODS:
        raise UsageError(f"method={cfg.method!r} is not one of {', '.join(METHODS)}")
    if cfg.dataset != "digits":
        require_real_root(cfg.dataset, cfg.data_root)
    if cfg.dataset != "digits" or cfg.teacher_checkpoint:  # a given teacher must exist and fit the architecture
        try:
            load_teacher_weights(build_model(cfg.teacher, NUM_CLASSES[cfg.dataset]), cfg.teacher_checkpoint)
        except (FileNotFoundError, ValueError) as err:
            raise UsageError(str(err)) from err


# ---------------------------------------------------------------------------------------------------
# data and teacher
# ---------------------------------------------------------------------------------------------------
def build_digits(cfg: Config, run: RunDir, device: torch.device, resume: bool, quiet: bool):
    """Digits batches, and the teacher: reused from the run folder (resume), loaded, or trained here.

    The teacher is its own checkpoint set (``teacher``); a resumed run reuses it without touching the RNG.
    """
    splits = digits_splits(cfg.seed, cfg.teacher_fraction, cfg.student_fraction)
    teacher = build_model(cfg.teacher, 10).to(device)
    if resume and has_set(run, "teacher"):
        run.load_checkpoint("teacher", {"teacher": teacher}, restore_rng=False)
        teacher.eval().requires_grad_(False)
        source = "reused from the run's checkpoints/teacher"
    else:
        if cfg.teacher_checkpoint:
            load_teacher_weights(teacher, cfg.teacher_checkpoint)
            source = f"loaded from {cfg.teacher_checkpoint}"
        else:
            train_digits_teacher(cfg, teacher, splits, device, quiet=quiet)
            source = f"trained here ({cfg.teacher_epochs} epochs on {len(splits.teacher_y)} digits)"
        run.save_checkpoint("teacher", {"teacher": teacher}, state={"source": source})
    cached, _, stats = digits_teacher_logits(cfg, teacher, splits, device)
    cached = cached.to(device)
    train = TensorBatches(splits.student_x, splits.student_y, cfg.batch_size)
    test = TensorBatches(splits.test_x, splits.test_y, cfg.test_batch_size, shuffle=False)
    stats.update(teacher=source, student_train_size=len(splits.student_y), test_size=len(splits.test_y))
    return train, test, (lambda x, idx: cached[idx.to(device)]), stats


def build_real(cfg: Config, device: torch.device):
    """CIFAR-100 / ImageNet loaders and the pretrained teacher from ``teacher_checkpoint``."""
    teacher = load_teacher_weights(build_model(cfg.teacher, NUM_CLASSES[cfg.dataset]), cfg.teacher_checkpoint)
    teacher.to(device)
    train_set, test_set = (cifar100_datasets if cfg.dataset == "cifar100" else imagenet_datasets)(cfg.data_root)
    train = DataLoader(IndexedDataset(train_set), batch_size=cfg.batch_size, shuffle=True, drop_last=True,
                       num_workers=cfg.num_workers, pin_memory=device.type == "cuda")
    test = DataLoader(test_set, batch_size=cfg.test_batch_size, shuffle=False, num_workers=cfg.num_workers)
    stats = {"teacher": f"loaded from {cfg.teacher_checkpoint}", "student_train_size": len(train_set),
             "test_size": len(test_set)}
    if cfg.method != "ce":
        stats["teacher_test_acc"] = evaluate(teacher, test, device, cfg.max_steps_per_epoch)
    return train, test, (lambda x, idx: teacher(x)), stats


# ---------------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------------
@entrypoint
def main(argv: list[str] | None = None) -> dict:
    argv = method_flag_to_override(list(sys.argv[1:] if argv is None else argv))
    s = start(Config, argv, tag=lambda c: f"{c.method}-{c.dataset}", default_config=CPU_CONFIG, smoke=SMOKE,
              parser=build_argument_parser(), uses_data_root=lambda c: c.dataset != "digits",
              data_root_hint="dataset=cifar100 or imagenet (configs/paper/*.yaml)", check=check_inputs,
              packages=("rld",))
    cfg, run, device, quiet = s.cfg, s.run, s.device, s.args.quiet
    s.log(f"run folder: {run.path}  method={cfg.method} dataset={cfg.dataset} device={device} "
          f"threads={torch.get_num_threads()}")

    if cfg.dataset == "digits":
        train, test, teacher_fn, stats = build_digits(cfg, run, device, s.resumed, quiet)
    else:
        train, test, teacher_fn, stats = build_real(cfg, device)
    nan = float("nan")
    s.log(f"teacher {cfg.teacher}: {stats['teacher']}; train error {stats.get('teacher_train_error', nan):.4f} "
          f"(natural {stats.get('teacher_natural_train_error', nan):.4f}), test accuracy "
          f"{stats.get('teacher_test_acc', nan):.4f}")

    student = build_model(cfg.student, NUM_CLASSES[cfg.dataset]).to(device)
    optimizer = make_optimizer(cfg, student)
    done, best = 0, {"acc": -1.0, "epoch": 0}
    if s.resumed and has_set(run, "last"):
        state = run.load_checkpoint("last", {"student": student}, optimizers={"sgd": optimizer})
        done, best = state["epoch"], state["best"]
        run.rewind_metrics(done, key="epoch")
        s.log(f"resumed after epoch {done}")

    started = time.time()
    bar = progress(range(done + 1, cfg.epochs + 1), total=cfg.epochs - done, desc=cfg.method, quiet=quiet)
    for epoch in bar:
        row = train_epoch(student, train, teacher_fn, cfg, optimizer, epoch, device)
        row["test_acc"] = evaluate(student, test, device, cfg.max_steps_per_epoch)
        if row["test_acc"] > best["acc"]:
            best = {"acc": row["test_acc"], "epoch": epoch}
            run.save_checkpoint("best", {"student": student}, state={"epoch": epoch, "test_acc": row["test_acc"]})
        run.log_metrics(epoch=epoch, **row, best_test_acc=best["acc"])
        run.save_checkpoint("last", {"student": student}, optimizers={"sgd": optimizer},
                            state={"epoch": epoch, "best": best, "test_acc": row["test_acc"]})
        if hasattr(bar, "set_postfix"):
            bar.set_postfix(loss=f"{row['loss']:.3f}", test=f"{row['test_acc']:.3f}")

    rows = run.read_metrics()
    summary = {"method": cfg.method, "last_test_acc": rows[-1]["test_acc"] if rows else float("nan"),
               "best_test_acc": best["acc"], "best_epoch": best["epoch"], "epochs": cfg.epochs,
               "train_seconds": round(time.time() - started, 2), "threads": torch.get_num_threads(), **stats}
    run.finish(summary)
    s.log(f"run folder: {run.path}")
    s.log(f"{cfg.method} student {cfg.student}: last-epoch test accuracy {summary['last_test_acc']:.4f} "
          f"(best {best['acc']:.4f} at epoch {best['epoch']}; the official code reports the best)")
    return {"run": str(run.path), **summary}


if __name__ == "__main__":
    main()
