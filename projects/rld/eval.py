"""Evaluate a trained student from its run folder; write ``eval.json`` and a figure of its training curves.

    uv run eval.py --run runs/<run>                  # default: the newest run under runs/
    uv run eval.py --run runs/<run> --checkpoint best

Reports the student's top-1 test accuracy (last and best checkpoints), its agreement with the teacher on
the test set, and, on the offline digits task, how the student treats the training samples whose teacher
logits were corrupted: the share it classifies correctly vs the share on which it copies the teacher's
mistake.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from rld.config import Config
from rld.data import digits_splits
from rld.engine import TensorBatches, evaluate, predict
from rld.models import build_model
from rld.teachers import digits_teacher_logits, load_teacher_weights
from shared.runs import RunDir, select_device

NUM_CLASSES = {"digits": 10, "cifar100": 100, "imagenet": 1000}


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, default=None,
                        help="run folder written by train.py (default: the newest under --out)")
    parser.add_argument("--out", type=Path, default=Path("runs"), help="where to look for the newest run")
    parser.add_argument("--checkpoint", choices=["last", "best"], default="last", help="student checkpoint to report")
    parser.add_argument("--data-root", type=str, default=None, help="real dataset root (default: the run's)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    parser.add_argument("--quiet", action="store_true")
    return parser.parse_args(argv)


def newest_run(out: Path) -> Path:
    runs = sorted(p.parent for p in out.glob("*/config.json"))
    if not runs:
        raise FileNotFoundError(f"no run folder under '{out}'; train one with `uv run train.py` or pass --run")
    return runs[-1]


def plot_curves(run: RunDir, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = run.read_metrics()
    epochs = [r["epoch"] for r in rows]
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(epochs, [r["train_acc"] for r in rows], label="train acc")
    ax.plot(epochs, [r["test_acc"] for r in rows], label="test acc")
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    args = parse(sys.argv[1:] if argv is None else argv)
    run = RunDir.open(args.run if args.run is not None else newest_run(args.out))
    cfg = run.read_config(Config)
    device = select_device(args.device)
    num_classes = NUM_CLASSES[cfg.dataset]
    student = build_model(cfg.student, num_classes).to(device)
    teacher = build_model(cfg.teacher, num_classes).to(device)
    result: dict = {"run": str(run.path), "method": cfg.method, "checkpoint": args.checkpoint}

    state = run.load_checkpoint(args.checkpoint, {"student": student}, restore_rng=False)
    result["epoch"] = state.get("epoch")
    if cfg.dataset == "digits":
        run.load_checkpoint("teacher", {"teacher": teacher}, restore_rng=False)
        splits = digits_splits(cfg.seed, cfg.teacher_fraction, cfg.student_fraction)
        test = TensorBatches(splits.test_x, splits.test_y, 512, shuffle=False)
        train = TensorBatches(splits.student_x, splits.student_y, 512, shuffle=False)
        teacher_train_logits, corrupted, stats = digits_teacher_logits(cfg, teacher, splits, device)
        student_train_logits, train_labels = predict(student, train, device)
        pred = student_train_logits.argmax(1)
        result.update(stats)
        result["student_train_acc"] = (pred == train_labels).float().mean().item()
        if corrupted.any():
            wrong_class = teacher_train_logits.argmax(1)
            result["corrupted_samples"] = int(corrupted.sum())
            result["student_acc_on_corrupted"] = (pred[corrupted] == train_labels[corrupted]).float().mean().item()
            result["student_copies_teacher_mistake"] = (pred[corrupted] == wrong_class[corrupted]).float().mean().item()
        max_steps = 0
    else:
        from torch.utils.data import DataLoader

        from rld.data import cifar100_datasets, imagenet_datasets

        load_teacher_weights(teacher, cfg.teacher_checkpoint)
        _, test_set = (cifar100_datasets if cfg.dataset == "cifar100" else imagenet_datasets)(
            args.data_root or cfg.data_root)
        test = DataLoader(test_set, batch_size=cfg.test_batch_size, shuffle=False, num_workers=cfg.num_workers)
        max_steps = cfg.max_steps_per_epoch
        result["teacher_test_acc"] = evaluate(teacher, test, device, max_steps)

    student_logits, labels = predict(student, test, device, max_steps)
    teacher_logits, _ = predict(teacher, test, device, max_steps)
    result["test_acc"] = (student_logits.argmax(1) == labels).float().mean().item()
    result["agreement_with_teacher"] = (student_logits.argmax(1) == teacher_logits.argmax(1)).float().mean().item()
    result["test_size"] = len(labels)
    run.write_json("eval.json", result)
    if run.read_metrics():
        plot_curves(run, run.path / "curves.png")
    if not args.quiet:
        print(f"{cfg.method} ({args.checkpoint} checkpoint, epoch {result['epoch']}): test accuracy "
              f"{result['test_acc']:.4f}; wrote {run.path / 'eval.json'}")
    return result


if __name__ == "__main__":
    with torch.no_grad():
        main()
