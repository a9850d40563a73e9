"""The few-shot counterpart of ``reproduce.py``: 5-way 1-shot glyph tasks, MAML vs HeTRoM vs sg vs clean MAML.

All members (method x seed) are ConvNets meta-trained in lockstep (:mod:`hetrom.population`); members of the
same seed start from the same initialisation and, within a task family, see the same tasks.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hetrom.config import HetromConfig
from hetrom.data import to_tensors
from hetrom.evaluate import build_model, build_tasks, evaluate, loss_function, test_tasks
from hetrom.objective import select_tasks, selected_mean
from hetrom.population import population_task_losses, stack_models
from shared.runs import progress, seed_everything
from shared.runs.cli import apply_overrides, load_config_file

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "fewshot_glyphs.yaml"


@dataclass(frozen=True)
class FewShotMember:
    label: str
    method: str
    seed: int
    noisy_rate: float
    outlier_rate: float
    m: int = 0
    k: int = 10


def fewshot_members(seeds: list[int], n: int) -> list[FewShotMember]:
    drop = round(0.3 * n)
    methods = [("MAML", "maml", 0, n), (f"HeTRoM m={drop} k={n}", "hetrom", drop, n), ("sg-HeTRoM", "sg", 0, n)]
    out = [FewShotMember(label, meth, s, 0.2, 0.1, m, k) for s in seeds for label, meth, m, k in methods]
    out += [FewShotMember("clean reference (MAML on clean tasks)", "maml", s, 0.0, 0.0, 0, n) for s in seeds]
    return out


def train_population(base: HetromConfig, members: list[FewShotMember], quiet: bool) -> list[dict]:
    """Meta-train every member for ``base.iterations`` in lockstep; return each member's clean-test metrics."""
    cfgs = [dataclasses.replace(base, method=mem.method, m=mem.m, k=mem.k, seed=mem.seed,
                                noisy_rate=mem.noisy_rate, outlier_rate=mem.outlier_rate, baseline="none")
            for mem in members]
    models = []
    for cfg in cfgs:  # the same seed gives the same initialisation
        seed_everything(cfg.seed)
        models.append(build_model(cfg))
    template, params = stack_models(models)
    optimizer = torch.optim.Adam(params.values(), lr=base.outer_lr)
    samplers = [build_tasks(cfg, "train", contaminated=True) for cfg in cfgs]
    rngs = [np.random.default_rng(cfg.seed) for cfg in cfgs]
    loss_fn = loss_function(base)
    kept, seen = np.zeros(len(members)), np.zeros(len(members))
    for it in progress(range(base.iterations), desc="meta-train", quiet=quiet):
        batches = [sampler.sample(rng, base.meta_batch) for sampler, rng in zip(samplers, rngs)]
        stacked = to_tensors({key: np.stack([b[key] for b in batches]) for key in batches[0]})
        kinds = stacked.pop("kind")
        losses = population_task_losses(template, params, stacked, loss_fn, base.inner_steps, base.inner_lr,
                                        base.first_order)
        objective = 0.0
        for i, (cfg, row) in enumerate(zip(cfgs, losses)):
            mask = select_tasks(row, cfg.method, cfg.m, cfg.k, cfg.sg_lower, cfg.sg_upper, cfg.sg_log_space)
            objective = objective + selected_mean(row, mask)
            if it >= base.iterations // 2:  # selection statistics over the second half of training
                kept[i] += (mask & (kinds[i] != 0)).sum().item()
                seen[i] += (kinds[i] != 0).sum().item()
        optimizer.zero_grad(set_to_none=True)
        objective.backward()
        optimizer.step()
        if not quiet and not sys.stderr.isatty() and (it + 1) % max(1, base.iterations // 10) == 0:
            print(f"[{it + 1}/{base.iterations}] mean objective {objective.item() / len(members):.3f}", flush=True)
    clean_test = test_tasks(base)
    out = []
    for i, (cfg, member) in enumerate(zip(cfgs, members)):
        model = build_model(cfg)
        model.load_state_dict({name: p[i].detach() for name, p in params.items()})
        out.append({**dataclasses.asdict(member), **evaluate(model, cfg, clean_test),
                    "contaminated_kept": kept[i] / seen[i] if seen[i] else None})
    return out


def comparison_table(rows: list[dict], steps: list[int]) -> dict:
    """Mean and std over seeds of the accuracy after each number of steps, one row a method."""
    labels = list(dict.fromkeys(r["label"] for r in rows))
    columns = ["method"] + [c for s in steps for c in (f"accuracy {s} step{'s' * (s != 1)}", "± std")]
    table = []
    for label in labels:
        mine = [r for r in rows if r["label"] == label]
        cells = [label]
        for s in steps:
            values = np.array([r[f"acc_{s}"] for r in mine])
            cells += [float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else None]
        kept = [r["contaminated_kept"] for r in mine if r["contaminated_kept"] is not None and r["noisy_rate"] > 0]
        cells.append(f"{100 * np.mean(kept):.0f}%" if kept else "—")
        table.append(cells)
    return {"columns": columns + ["contaminated tasks kept"], "rows": table, "floatfmt": ".3f"}


def run_fewshot(args) -> tuple[dict, dict, list[dict]]:
    base = apply_overrides(HetromConfig(), load_config_file(CONFIG))
    base = dataclasses.replace(base, iterations=args.iterations or base.iterations)
    if args.smoke:
        base = dataclasses.replace(base, iterations=2, eval_tasks=10, glyph_classes=40, glyph_train_classes=30,
                                   filters=8, k_query=2)
    rows = train_population(base, fewshot_members(args.seeds, base.meta_batch), args.quiet)
    return {"contaminated": comparison_table(rows, [1, 10])}, dataclasses.asdict(base), rows
