"""Evaluate a trained student from its run folder: ``eval.json["eval"]`` and a figure of its training curves.

    uv run eval.py runs/<run>                        # the last checkpoint (the run must have finished)
    uv run eval.py runs/<run> --checkpoint best
    uv run eval.py runs/<run> --allow-partial        # a run that was stopped: its last complete checkpoint

Reports the student's top-1 test accuracy, its agreement with the teacher on the test set, and, on the
offline digits task, how the student treats the training samples whose teacher logits were corrupted: the
share it classifies correctly vs the share on which it copies the teacher's mistake. Writes only inside the
run folder.
"""

from __future__ import annotations

import torch

from rld.config import Config
from rld.data import digits_splits
from rld.engine import TensorBatches, predict
from rld.models import build_model
from rld.teachers import digits_teacher_logits, load_teacher_weights
from shared.runs import RunDir, build_eval_parser, entrypoint, load_modules, open_run

NUM_CLASSES = {"digits": 10, "cifar100": 100, "imagenet": 1000}


def build_argument_parser():
    parser = build_eval_parser(__doc__.split("\n")[0])
    parser.add_argument("--data-root", type=str, default=None, help="real dataset root (default: the run's)")
    return parser


def plot_curves(run: RunDir, path) -> None:
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


@entrypoint
@torch.no_grad()
def main(argv: list[str] | None = None) -> dict:
    ev = open_run(Config, argv, parser=build_argument_parser())
    cfg, run, device, quiet = ev.cfg, ev.run, ev.device, ev.args.quiet
    num_classes = NUM_CLASSES[cfg.dataset]
    student = build_model(cfg.student, num_classes).to(device)
    teacher = build_model(cfg.teacher, num_classes).to(device)
    state = ev.load({"student": student})
    result: dict = {"method": cfg.method, "epoch": state.get("epoch")}

    if cfg.dataset == "digits":
        load_modules(run.checkpoint_info("teacher").path, {"teacher": teacher})
        teacher.eval()
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
            ev.args.data_root or cfg.data_root)
        test = DataLoader(test_set, batch_size=cfg.test_batch_size, shuffle=False, num_workers=cfg.num_workers)
        max_steps = cfg.max_steps_per_epoch

    student_logits, labels = predict(student, test, device, max_steps, desc=None if quiet else "student")
    teacher_logits, _ = predict(teacher, test, device, max_steps, desc=None if quiet else "teacher")
    if cfg.dataset != "digits":
        result["teacher_test_acc"] = (teacher_logits.argmax(1) == labels).float().mean().item()
    result["test_acc"] = (student_logits.argmax(1) == labels).float().mean().item()
    result["agreement_with_teacher"] = (student_logits.argmax(1) == teacher_logits.argmax(1)).float().mean().item()
    result["test_size"] = len(labels)
    path = ev.save(result)
    if run.read_metrics():
        plot_curves(run, run.path / "curves.png")
    ev.log(f"{cfg.method} ({ev.checkpoint.name} checkpoint, epoch {result['epoch']}): test accuracy "
           f"{result['test_acc']:.4f}; wrote {path}")
    return result


if __name__ == "__main__":
    main()
