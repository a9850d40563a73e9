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

import os
import sys
import time

import numpy as np
import torch

from shared.runs import RunDir, config_to_dict, parse_args, progress, seed_everything, select_device
from shared.runs.cli import build_parser

from hetrom.config import HetromConfig
from hetrom.data import to_tensors
from hetrom.evaluate import build_model, build_tasks, evaluate, headline_key, loss_function, test_tasks
from hetrom.maml import parameters_of, task_losses
from hetrom.objective import select_tasks, selected_mean

SMOKE = {"iterations": 6, "meta_batch": 6, "m": 2, "k": 6, "eval_tasks": 20, "log_every": 2, "ckpt_every": 3,
         "eval_every": 3, "filters": 8, "image_size": 14, "conv_blocks": 3, "k_query": 2, "glyph_classes": 40,
         "glyph_train_classes": 30}


def meta_step(model, optimizer, batch, method: str, cfg: HetromConfig, loss_fn) -> dict[str, float]:
    """One outer update: adapt every task, select the ranked range, Adam step on the selected mean."""
    losses = task_losses(model, parameters_of(model), batch, loss_fn, cfg.inner_steps, cfg.inner_lr,
                         cfg.first_order)
    mask = select_tasks(losses, method, cfg.m, cfg.k, cfg.sg_lower, cfg.sg_upper, cfg.sg_log_space)
    objective = selected_mean(losses, mask)
    optimizer.zero_grad(set_to_none=True)
    objective.backward()
    optimizer.step()
    contaminated = batch["kind"] != 0
    return {"objective": objective.item(), "mean_task_loss": losses.mean().item(), "kept": int(mask.sum()),
            "kept_contaminated": int((mask & contaminated).sum()), "contaminated": int(contaminated.sum())}


def main(argv: list[str] | None = None) -> dict:
    parser = build_parser(HetromConfig, __doc__.splitlines()[0])
    cfg, args = parse_args(HetromConfig, argv, parser=parser, smoke=SMOKE)
    try:
        if args.resume is not None:  # a resumed run continues with the config it was started with
            cfg = RunDir.open(args.resume).read_config(HetromConfig)
        cfg.validate()
        build_tasks(cfg, "train", contaminated=True)  # a missing --data-root fails here, before any write
    except (ValueError, FileNotFoundError) as err:
        parser.error(str(err))  # exits with status 2 before anything is written
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
    seed_everything(cfg.seed, args.deterministic)
    device = select_device(cfg.device)

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

    # ---- run folder, resume -----------------------------------------------------------------------------
    start = 0
    if args.resume is not None:
        run = RunDir.open(args.resume)
        state = run.load_checkpoint("last", models, optimizers=optimizers)
        start, task_rng.bit_generator.state = state["step"], state["task_rng"]
        run.rewind_metrics(start)
        run.log(f"resumed {run.path} at iteration {start}", quiet=args.quiet)
    else:
        tag = f"{cfg.task}-{cfg.method}" + (f"-m{cfg.m}-k{cfg.k}" if cfg.method == "hetrom" else "")
        run = RunDir.create(args.out, tag)
        run.write_config(cfg, "hetrom", argv=sys.argv if argv is None else argv)
        run.log(f"run folder: {run.path}", quiet=args.quiet)

    def checkpoint(step: int) -> None:
        run.save_checkpoint("last", models, optimizers=optimizers,
                            state={"step": step, "task_rng": task_rng.bit_generator.state})

    # ---- meta-training ----------------------------------------------------------------------------------
    t0 = time.time()
    for step in progress(range(start, cfg.iterations), total=cfg.iterations, initial=start, desc="meta-train",
                         quiet=args.quiet):
        batch = to_tensors(train_tasks.sample(task_rng, cfg.meta_batch), device)
        stats = {name: meta_step(models[name], optimizers[name], batch, methods[name], cfg, loss_fn)
                 for name in models}
        done = step + 1
        if done % cfg.log_every == 0 or done == cfg.iterations:
            row = {f"{name}/{key}": value for name, s in stats.items() for key, value in s.items()}
            if done % cfg.eval_every == 0 or done == cfg.iterations:
                for name, model in models.items():
                    metrics = evaluate(model, cfg, clean_test, steps=[cfg.eval_steps[0]])
                    row.update({f"{name}/test_{key}": value for key, value in metrics.items()})
            run.log_metrics(step=done, **row)
            if not args.quiet and not sys.stderr.isatty():
                print(f"[{done}/{cfg.iterations}] " + "  ".join(f"{k}={v:.3f}" for k, v in row.items()
                                                               if k.endswith(("objective", "mse_1", "acc_1"))))
        if done % cfg.ckpt_every == 0 or done == cfg.iterations:
            checkpoint(done)
    train_time = time.time() - t0

    # ---- final clean-test evaluation --------------------------------------------------------------------
    results = {name: evaluate(model, cfg, clean_test) for name, model in models.items()}
    report = {"config": config_to_dict(cfg), "methods": methods, "results": results,
              "train_time_s": round(train_time, 1), "checkpoint": str(run.checkpoints / "last.safetensors")}
    run.write_json("eval.json", report)
    for s in cfg.eval_steps:
        key = headline_key(cfg, s)
        line = "  ".join(f"{methods[name]}{'' if name == 'model' else ' (baseline)'} {r[key]:.3f}"
                         for name, r in results.items())
        run.log(f"clean-test {key} after {s} step(s): {line}", quiet=args.quiet)
    run.log(f"done in {train_time:.0f} s; run folder: {run.path}", quiet=args.quiet)
    return {"run": str(run.path), **report}


if __name__ == "__main__":
    main()
