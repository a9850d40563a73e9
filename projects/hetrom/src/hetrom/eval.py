"""Evaluate a HeTRoM run (and its MAML baseline) on the fixed clean test tasks after 1 and 10 steps.

    uv run eval.py runs/<run>                      # merges into runs/<run>/eval.json, writes adaptation.png
    uv run eval.py runs/<run> --steps 0 1 5 10 --eval-tasks 500

Sinusoid: MSE against the noise-free targets of the query points; few-shot: query accuracy / cross-entropy.
"""

from __future__ import annotations

from pathlib import Path

import torch

from hetrom.config import HetromConfig
from hetrom.evaluate import build_model, evaluate, headline_key, loss_function, test_tasks
from hetrom.maml import adapted_predictions, parameters_of
from shared.runs import build_eval_parser, entrypoint, open_run


def plot_sinusoid(models, names, cfg, tasks, path: Path) -> None:
    """Four clean test tasks: truth, support points, and each model after 0, 1 and 10 steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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


@entrypoint
def main(argv: list[str] | None = None) -> dict:
    parser = build_eval_parser(__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="+", default=None, help="adaptation steps (default: config's)")
    parser.add_argument("--eval-tasks", type=int, default=None, help="number of clean test tasks")
    ev = open_run(HetromConfig, argv, parser=parser)
    cfg = ev.cfg
    if ev.args.eval_tasks is not None:
        cfg.eval_tasks = ev.args.eval_tasks
    names = {"model": cfg.method, **({"baseline": "maml"} if cfg.baseline == "maml" else {})}
    models = {name: build_model(cfg).to(ev.device) for name in names}
    ev.load(models)
    tasks = test_tasks(cfg, ev.device)
    steps = ev.args.steps or list(cfg.eval_steps)
    results = {name: evaluate(model, cfg, tasks, steps=steps, quiet=ev.args.quiet) for name, model in models.items()}
    ev.save({"methods": names, "steps": steps, "eval_tasks": cfg.eval_tasks, "results": results})
    if cfg.task == "sinusoid":
        plot_sinusoid(models, names, cfg, {k: v.cpu() for k, v in tasks.items()}, ev.run.path / "adaptation.png")
    for s in steps:
        key = headline_key(cfg, s)
        ev.log(f"clean-test {key}: " + "  ".join(f"{names[n]} {r[key]:.3f}" for n, r in results.items()))
    ev.log(f"wrote {ev.run.path / 'eval.json'}")
    return {"run": str(ev.run.path), "methods": names, "steps": steps, "results": results}
