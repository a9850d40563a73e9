"""Meta-train HeTRoM (or sg-HeTRoM, or MAML) on heterogeneous tasks, with MAML trained beside it.

    uv run train.py                                   # contaminated sinusoids, HeTRoM (m=8, k=25) vs MAML
    uv run train.py method=sg                         # sg-HeTRoM
    uv run train.py --config configs/fewshot_glyphs.yaml
    uv run train.py --config configs/omniglot.yaml --data-root /data/omniglot

Per meta-iteration (the bi-level algorithm of HeTRoM, arXiv 2410.18894, as we read it; see README):
1. sample n tasks; 2. adapt each task's copy of phi on its support set (inner problem, MAML Eq. 1);
3. compute the post-adaptation query losses l_i(phi); 4. select tasks: ranks m+1..k of the descending sort
(HeTRoM), the statistical thresholds (sg-HeTRoM) or all (MAML); 5. Adam step on the mean of the selected l_i.
The baseline (MAML) sees the same tasks, starts from the same initialisation and gets the same budget.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

from hetrom.config import HetromConfig
from hetrom.data import to_tensors
from hetrom.evaluate import build_model, build_tasks, evaluate, headline_key, loss_function, test_tasks
from hetrom.maml import parameters_of, task_losses
from hetrom.objective import select_tasks, selected_mean
from shared.runs import entrypoint, guard_finite, progress, start

PROJECT = Path(__file__).resolve().parents[2]
SMOKE = {"iterations": 6, "meta_batch": 6, "m": 2, "k": 6, "eval_tasks": 20, "log_every": 2, "ckpt_every": 3,
         "eval_every": 3, "filters": 8, "image_size": 14, "conv_blocks": 3, "k_query": 2, "glyph_classes": 40,
         "glyph_train_classes": 30}


def check(cfg: HetromConfig, args) -> None:
    """Everything that can be checked before the run folder exists (a missing --data-root layout included)."""
    cfg.validate()
    build_tasks(cfg, "train", contaminated=True)


def uses_data_root(cfg: HetromConfig) -> bool:
    return cfg.task == "fewshot" and cfg.dataset in ("omniglot", "miniimagenet")


def meta_step(model, optimizer, batch, method: str, cfg: HetromConfig, loss_fn, step: int, name: str
              ) -> dict[str, float]:
    """One outer update: adapt every task, select the ranked range, Adam step on the selected mean."""
    losses = task_losses(model, parameters_of(model), batch, loss_fn, cfg.inner_steps, cfg.inner_lr,
                         cfg.first_order)
    mask = select_tasks(losses, method, cfg.m, cfg.k, cfg.sg_lower, cfg.sg_upper, cfg.sg_log_space)
    objective = selected_mean(losses, mask)
    guard_finite(step, **{f"{name}_objective": objective})
    optimizer.zero_grad(set_to_none=True)
    objective.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), float("inf"))
    guard_finite(step, **{f"{name}_grad_norm": grad_norm})
    optimizer.step()
    contaminated = batch["kind"] != 0
    return {"objective": objective.item(), "mean_task_loss": losses.mean().item(), "kept": int(mask.sum()),
            "kept_contaminated": int((mask & contaminated).sum()), "contaminated": int(contaminated.sum())}


@entrypoint
def main(argv: list[str] | None = None) -> dict:
    s = start(HetromConfig, argv, description=__doc__.splitlines()[0],
              tag=lambda c: f"{c.task}-{c.method}" + (f"-m{c.m}-k{c.k}" if c.method == "hetrom" else ""),
              default_config=PROJECT / "configs" / "cpu.yaml", smoke=SMOKE, uses_data_root=uses_data_root,
              data_root_hint="task=fewshot with dataset=omniglot or dataset=miniimagenet", check=check,
              packages=("hetrom",))
    cfg, run, device = s.cfg, s.run, s.device

    # ---- models: the method and (optionally) MAML, from the same initialisation -------------------------
    models = {"model": build_model(cfg).to(device)}
    methods = {"model": cfg.method}
    if cfg.baseline == "maml":
        models["baseline"] = build_model(cfg).to(device)
        models["baseline"].load_state_dict(models["model"].state_dict())
        methods["baseline"] = "maml"
    optimizers = {name: torch.optim.Adam(m.parameters(), lr=cfg.outer_lr) for name, m in models.items()}
    loss_fn = loss_function(cfg)
    train_tasks = build_tasks(cfg, "train", contaminated=True)
    clean_test = test_tasks(cfg, device)
    task_rng = np.random.default_rng(cfg.seed)

    done = 0
    if s.resumed and run.has_checkpoint("last"):
        state = run.load_checkpoint("last", models, optimizers=optimizers)
        done, task_rng.bit_generator.state = state["step"], state["task_rng"]
        run.rewind_metrics(done)
        s.log(f"resumed after meta-iteration {done}")
    else:
        s.log(f"run folder: {run.path}")

    # ---- meta-training ----------------------------------------------------------------------------------
    t0 = time.time()
    for step in progress(range(done + 1, cfg.iterations + 1), total=cfg.iterations, initial=done,
                         desc="meta-train", quiet=s.args.quiet):
        batch = to_tensors(train_tasks.sample(task_rng, cfg.meta_batch), device)
        stats = {name: meta_step(models[name], optimizers[name], batch, methods[name], cfg, loss_fn, step, name)
                 for name in models}
        if step % cfg.log_every == 0 or step == cfg.iterations:
            row = {f"{name}/{key}": value for name, st in stats.items() for key, value in st.items()}
            if step % cfg.eval_every == 0 or step == cfg.iterations:
                for name, model in models.items():
                    metrics = evaluate(model, cfg, clean_test, steps=[cfg.eval_steps[0]])
                    row.update({f"{name}/test_{key}": value for key, value in metrics.items()})
            run.log_metrics(step=step, **row)
            if not s.args.quiet and not sys.stderr.isatty():
                print(f"[{step}/{cfg.iterations}] " + "  ".join(f"{k}={v:.3f}" for k, v in row.items()
                                                               if k.endswith(("objective", "mse_1", "acc_1"))),
                      flush=True)
        if step % cfg.ckpt_every == 0 or step == cfg.iterations:
            run.save_checkpoint("last", models, optimizers=optimizers,
                                state={"step": step, "task_rng": task_rng.bit_generator.state})
    train_time = time.time() - t0

    # ---- final clean-test evaluation --------------------------------------------------------------------
    results = {name: evaluate(model, cfg, clean_test) for name, model in models.items()}
    run.finish({"methods": methods, "results": results, "train_time_s": round(train_time, 1),
                "iterations": cfg.iterations})
    for steps in cfg.eval_steps:
        key = headline_key(cfg, steps)
        line = "  ".join(f"{methods[name]}{'' if name == 'model' else ' (baseline)'} {r[key]:.3f}"
                         for name, r in results.items())
        s.log(f"clean-test {key} after {steps} step(s): {line}")
    s.log(f"done in {train_time:.0f} s; run folder: {run.path}")
    return {"run": str(run.path), "methods": methods, "results": results}
