"""Evaluate a HeTRoM run (and its MAML baseline) on the fixed clean test tasks after 1 and 10 steps.

    uv run eval.py runs/<run>                      # writes runs/<run>/eval.json and adaptation figures
    uv run eval.py runs/<run>/checkpoints/last.safetensors --steps 0 1 5 10

Sinusoid: MSE against the noise-free targets of the query points; few-shot: query accuracy / cross-entropy.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from shared.runs import RunDir, config_to_dict, load_modules, select_device  # noqa: E402

from hetrom.config import HetromConfig  # noqa: E402
from hetrom.evaluate import build_model, evaluate, headline_key, loss_function, test_tasks  # noqa: E402
from hetrom.maml import adapted_predictions, parameters_of  # noqa: E402


def parse(argv: list[str] | None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", type=Path, help="a run folder, or a checkpoint .safetensors inside one")
    parser.add_argument("--steps", type=int, nargs="+", default=None, help="adaptation steps (default: config's)")
    parser.add_argument("--eval-tasks", type=int, default=None, help="number of clean test tasks")
    parser.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda", "mps"])
    parser.add_argument("--data-root", default=None, help="dataset root (few-shot runs on a real dataset)")
    parser.add_argument("--quiet", action="store_true")
    return parser, parser.parse_args(argv)


def plot_sinusoid(models, names, cfg, tasks, path: Path) -> None:
    """Four clean test tasks: truth, support points, and each model after 0, 1 and 10 steps."""
    order = torch.argsort(tasks["x_query"][:4, :, 0], dim=1)
    fig, axes = plt.subplots(len(models), 4, figsize=(13, 3 * len(models)), squeeze=False)
    sub = {k: v[:4] for k, v in tasks.items()}
    for row, (name, model) in enumerate(models.items()):
        device = next(model.parameters()).device  # adapt where the model lives, plot on the CPU
        on_device = {k: v.to(device) for k, v in sub.items()}
        preds = {s: adapted_predictions(model, parameters_of(model), on_device, loss_function(cfg), s,
                                        cfg.inner_lr).cpu() for s in (0, 1, 10)}
        for col in range(4):
            ax, idx = axes[row, col], order[col]
            x = sub["x_query"][col, idx, 0]
            ax.plot(x, sub["f_query"][col, idx, 0], "k-", lw=2, label="truth")
            ax.plot(sub["x_support"][col, :, 0], sub["y_support"][col, :, 0], "k^", label="support")
            for s, style in zip((0, 1, 10), (":", "--", "-")):
                ax.plot(x, preds[s][col, idx, 0], style, label=f"{s} step(s)")
            ax.set_title(f"{names[name]}, task {col}")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser, args = parse(argv)
    run_path = args.target.parent.parent if args.target.suffix == ".safetensors" else args.target
    weights = args.target if args.target.suffix == ".safetensors" else run_path / "checkpoints" / "last.safetensors"
    try:
        run = RunDir.open(run_path)
        cfg: HetromConfig = run.read_config(HetromConfig)
    except (FileNotFoundError, ValueError) as err:
        parser.error(str(err))
    if args.data_root is not None:
        cfg.data_root = args.data_root
    if args.eval_tasks is not None:
        cfg.eval_tasks = args.eval_tasks
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
    device = select_device(args.device)
    names = {"model": cfg.method, **({"baseline": "maml"} if cfg.baseline == "maml" else {})}
    models = {name: build_model(cfg).to(device) for name in names}
    load_modules(weights, models)  # a clear ValueError on a corrupt or mismatched checkpoint
    tasks = test_tasks(cfg, device)
    steps = args.steps or list(cfg.eval_steps)
    results = {name: evaluate(model, cfg, tasks, steps=steps) for name, model in models.items()}
    report = {"checkpoint": str(weights), "config": config_to_dict(cfg), "methods": names, "steps": steps,
              "eval_tasks": cfg.eval_tasks, "results": results}
    run.write_json("eval.json", report)
    if cfg.task == "sinusoid":
        plot_sinusoid(models, names, cfg, {k: v.cpu() for k, v in tasks.items()}, run.path / "adaptation.png")
    if not args.quiet:
        for s in steps:
            key = headline_key(cfg, s)
            print(f"clean-test {key}: " + "  ".join(f"{names[n]} {r[key]:.3f}" for n, r in results.items()))
        print(f"wrote {run.path / 'eval.json'}")
    return report


if __name__ == "__main__":
    main()
