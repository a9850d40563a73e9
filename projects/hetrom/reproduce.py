"""Reproduce the claim at CPU scale: HeTRoM and sg-HeTRoM vs MAML vs a clean-trained reference.

    uv run reproduce.py                       # sinusoid experiments -> results/sinusoid.json + figures
    uv run reproduce.py --experiment fewshot  # glyph 5-way 1-shot counterpart -> results/fewshot.json

Every (method, seed, task family) of an experiment is one *member*; all members are meta-trained in lockstep
(:mod:`hetrom.population`), each on its own task stream: members with the same seed and the same family see
the same tasks and start from the same initialisation (paired comparisons). The clean reference is MAML
trained on an uncontaminated stream. All are tested on the same fixed clean test tasks after 1 and 10 steps.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from shared.runs import RunDir, package_versions, progress, seed_everything  # noqa: E402

from hetrom.config import HetromConfig  # noqa: E402
from hetrom.data import to_tensors  # noqa: E402
from hetrom.evaluate import build_model, build_tasks, evaluate, loss_function, test_tasks  # noqa: E402
from hetrom.objective import select_tasks, selected_mean  # noqa: E402
from hetrom.population import population_task_losses, stack_models  # noqa: E402

RESULTS = Path(__file__).parent / "results"


@dataclass(frozen=True)
class Member:
    group: str  # which table it belongs to
    label: str
    method: str
    seed: int
    noisy_rate: float
    outlier_rate: float
    m: int = 0
    k: int = 25


def sinusoid_members(seeds: list[int], n: int) -> list[Member]:
    """The main comparison, its clean counterpart, and the contamination-rate and m sweeps (first seed)."""
    methods = [("MAML", "maml", 0, n), ("HeTRoM m=8 k=25", "hetrom", 8, n), ("HeTRoM m=8 k=23", "hetrom", 8, n - 2),
               ("ATk m=0 k=20", "hetrom", 0, n - 5), ("sg-HeTRoM", "sg", 0, n)]
    out = [Member("contaminated", label, meth, s, 0.2, 0.1, m, k) for s in seeds for label, meth, m, k in methods]
    out += [Member("contaminated", "clean reference (MAML on clean tasks)", "maml", s, 0.0, 0.0) for s in seeds]
    out += [Member("clean", label, meth, s, 0.0, 0.0, m, k) for s in seeds for label, meth, m, k in methods[1:3]]
    out += [Member("clean", "sg-HeTRoM", "sg", s, 0.0, 0.0) for s in seeds]
    for rate in (0.1, 0.2, 0.4):  # 2/3 noisy, 1/3 outlier; 0.0 and 0.3 come from the groups above
        for label, meth, m, k in (methods[0], methods[1], methods[4]):
            out.append(Member("rate", label, meth, seeds[0], round(rate * 2 / 3, 4), round(rate / 3, 4), m, k))
    out += [Member("m_sweep", f"HeTRoM m={m} k={n}", "hetrom", seeds[0], 0.2, 0.1, m, n) for m in (4, 12)]
    return out


def fewshot_members(seeds: list[int], n: int) -> list[Member]:
    drop = round(0.3 * n)
    methods = [("MAML", "maml", 0, n), (f"HeTRoM m={drop} k={n}", "hetrom", drop, n), ("sg-HeTRoM", "sg", 0, n)]
    out = [Member("contaminated", label, meth, s, 0.2, 0.1, m, k) for s in seeds for label, meth, m, k in methods]
    out += [Member("contaminated", "clean reference (MAML on clean tasks)", "maml", s, 0.0, 0.0) for s in seeds]
    return out


def member_config(base: HetromConfig, member: Member) -> HetromConfig:
    return dataclasses.replace(base, method=member.method, m=member.m, k=member.k, seed=member.seed,
                               noisy_rate=member.noisy_rate, outlier_rate=member.outlier_rate, baseline="none")


def train_population(base: HetromConfig, members: list[Member], quiet: bool) -> list[dict]:
    """Meta-train every member for ``base.iterations`` in lockstep; return each member's clean-test metrics."""
    cfgs = [member_config(base, mem) for mem in members]
    models = []
    for cfg in cfgs:  # the same seed gives the same initialisation
        seed_everything(cfg.seed)
        models.append(build_model(cfg))
    template, params = stack_models(models)
    optimizer = torch.optim.Adam(params.values(), lr=base.outer_lr)
    samplers = [build_tasks(cfg, "train", contaminated=True) for cfg in cfgs]
    rngs = [np.random.default_rng(cfg.seed) for cfg in cfgs]
    loss_fn = loss_function(base)
    kept_contaminated = np.zeros(len(members))
    contaminated = np.zeros(len(members))
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
                kept_contaminated[i] += (mask & (kinds[i] != 0)).sum().item()
                contaminated[i] += (kinds[i] != 0).sum().item()
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
        metrics = evaluate(model, cfg, clean_test)
        share = kept_contaminated[i] / contaminated[i] if contaminated[i] else None
        out.append({**dataclasses.asdict(member), **metrics, "contaminated_kept": share})
    return out


def summarise(rows: list[dict], key: str) -> tuple[float, float | None]:
    """Mean and sample std over seeds (no std from a single seed)."""
    values = np.array([r[key] for r in rows])
    return float(values.mean()), (float(values.std(ddof=1)) if len(values) > 1 else None)


def comparison_table(rows: list[dict], group: str, metric: str, steps: list[int]) -> dict:
    """Mean and std over seeds of ``metric`` ('mse' or 'acc') after each number of steps, one row a method."""
    labels = list(dict.fromkeys(r["label"] for r in rows if r["group"] == group))
    name = {"mse": "MSE", "acc": "accuracy"}[metric]
    columns = ["method"] + [c for s in steps for c in (f"{name} {s} step{'s' * (s != 1)}", "± std")]
    columns += ["contaminated tasks kept"]
    table = []
    for label in labels:
        mine = [r for r in rows if r["group"] == group and r["label"] == label]
        cells = [label]
        for s in steps:
            cells += list(summarise(mine, f"{metric}_{s}"))
        kept = [r["contaminated_kept"] for r in mine if r["contaminated_kept"] is not None]
        cells.append(f"{100 * np.mean(kept):.0f}%" if kept else "—")
        table.append(cells)
    return {"columns": columns, "rows": table, "floatfmt": ".3f"}


def sinusoid_tables(rows: list[dict], seeds: list[int]) -> tuple[dict, list[str]]:
    tables = {"contaminated": comparison_table(rows, "contaminated", "mse", [1, 10]),
              "clean": comparison_table([r for r in rows if r["group"] == "clean"] +
                                        [{**r, "group": "clean", "label": "MAML"} for r in rows
                                         if r["group"] == "contaminated" and r["noisy_rate"] == 0.0],
                                        "clean", "mse", [1, 10])}
    first = [r for r in rows if r["seed"] == seeds[0]]

    def at(label: str, rate: float) -> dict:
        for r in first:
            total = round(r["noisy_rate"] + r["outlier_rate"], 3)
            group_ok = r["group"] in ("contaminated", "clean", "rate")
            if group_ok and total == rate and (r["label"] == label or (rate == 0 and label == "MAML"
                                                                      and r["label"].startswith("clean ref"))):
                return r
        raise KeyError((label, rate))

    rates = [0.0, 0.1, 0.2, 0.3, 0.4]
    labels = ["MAML", "HeTRoM m=8 k=25", "sg-HeTRoM"]
    ref = next(r for r in first if r["label"].startswith("clean ref"))
    tables["rate_sweep"] = {"columns": ["contaminated share", *[f"{l} (MSE 1 step)" for l in labels],
                                        "clean reference"],
                            "rows": [[f"{int(100 * rate)}%", *[at(l, rate)["mse_1"]
                                                                for l in labels], ref["mse_1"]] for rate in rates],
                            "floatfmt": ".3f"}
    m_rows = [r for r in first if r["group"] == "m_sweep" or (r["group"] == "contaminated" and r["k"] == 25
                                                             and r["method"] in ("maml", "hetrom")
                                                             and r["noisy_rate"] > 0)]
    m_rows.sort(key=lambda r: r["m"])
    tables["m_sweep"] = {"columns": ["m (k = 25)", "MSE 1 step", "MSE 10 steps", "contaminated tasks kept"],
                         "rows": [[r["m"], r["mse_1"], r["mse_10"], f"{100 * r['contaminated_kept']:.0f}%"]
                                  for r in m_rows], "floatfmt": ".3f"}
    return tables, rates


def plot_sinusoid(tables: dict, out: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    sweep = tables["rate_sweep"]
    x = [int(r[0].rstrip("%")) for r in sweep["rows"]]
    for j, name in enumerate(sweep["columns"][1:], start=1):
        axes[0].plot(x, [r[j] for r in sweep["rows"]], "o-" if j < len(sweep["columns"]) - 1 else "k--",
                     label=name.replace(" (MSE 1 step)", ""))
    axes[0].set(xlabel="contaminated training tasks (%)", ylabel="clean-test MSE after 1 step",
                title="sinusoid: robustness to contamination")
    axes[0].legend(fontsize=8)
    ms = tables["m_sweep"]["rows"]
    axes[1].plot([r[0] for r in ms], [r[1] for r in ms], "o-", label="1 step")
    axes[1].plot([r[0] for r in ms], [r[2] for r in ms], "s-", label="10 steps")
    axes[1].axvline(7.5, color="gray", ls=":", label="expected contaminated tasks")
    axes[1].set(xlabel="m (tasks dropped from the top, k = 25)", ylabel="clean-test MSE",
                title="30% contaminated: sweep of m")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "sinusoid_sweeps.png", dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", choices=["sinusoid", "fewshot"], default="sinusoid")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--iterations", type=int, default=None, help="default: 1500 (sinusoid), 300 (fewshot)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder of the results JSON and figures")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    if args.experiment == "sinusoid":
        base = dataclasses.replace(HetromConfig(), iterations=args.iterations or 1500)
        rows = train_population(base, sinusoid_members(args.seeds, base.meta_batch), args.quiet)
        tables, _ = sinusoid_tables(rows, args.seeds)
        plot_sinusoid(tables, args.out)
    else:
        from shared.runs.cli import load_config_file, apply_overrides

        base = apply_overrides(HetromConfig(), load_config_file(Path(__file__).parent / "configs/fewshot_glyphs.yaml"))
        base = dataclasses.replace(base, iterations=args.iterations or base.iterations)
        rows = train_population(base, fewshot_members(args.seeds, base.meta_batch), args.quiet)
        tables = {"contaminated": comparison_table(rows, "contaminated", "acc", [1, 10])}
    command = "uv run reproduce.py " + " ".join(sys.argv[1:] if argv is None else argv)
    report = {"tables": tables, "seeds": args.seeds, "versions": package_versions("hetrom"),
              "wall_time_s": round(time.time() - t0, 1), "command": command.strip(),
              "threads": torch.get_num_threads(), "config": dataclasses.asdict(base), "members": rows}
    RunDir(args.out).write_json(f"{args.experiment}.json", report)
    for name, table in tables.items():
        print(f"\n{name}\n" + " | ".join(map(str, table["columns"])))
        for row in table["rows"]:
            print(" | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row))
    print(f"\nwrote {args.out / (args.experiment + '.json')} in {report['wall_time_s']:.0f} s")
    return report


if __name__ == "__main__":
    main()
