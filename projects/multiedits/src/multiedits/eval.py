"""Multi-aspect editing benchmark: ParallelEdits vs sequential single-aspect editing vs one-pass P2P.

    uv run eval.py                        # offline multi-object benchmark on the committed base model -> --out
    uv run eval.py runs/<run>             # ... with the base model a train.py run made; writes inside the run
    uv run eval.py --data-root /data/PIE-Bench dataset=pie_bench pipeline=/models/lcm limit=20
    uv run eval.py --data-root /data/PIE_Bench_pp dataset=pie_bench_pp pipeline=/models/lcm clip=/models/clip

Offline (``dataset=shapes``): ``n_per_count`` records for each number of edited aspects (1-3) of 1-3-object
scenes (``multiedits.data.scene_records``: aspects on different objects and the background); per-aspect accuracy
and kept facts read by conddiff's scene judge from the edited image against the known target scene,
PIE-Bench unedited-region PSNR / SSIM / MSE, structure distance (judge features), UNet calls and seconds per edit.
Real data (PIE-Bench / PIE-Bench++, any diffusers Stable-Diffusion-style ``pipeline`` folder): the unedited-
region metrics on the record's mask, CLIP similarity whole / edited part with a local CLIP (``clip=``), cost.
Writes ``eval.json`` and ``grid.png`` (source, each method, target) to the output folder.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from conddiff.assets import BASE_MULTI, SCENE_JUDGE
from multiedits.editor import EditConfig, P2PConfig
from shared.runs import RunDir, UsageError, entrypoint, open_run, parse_args, progress, select_device
from shared.runs.cli import build_parser

PROJECT = Path(__file__).resolve().parents[2]
METHODS = ("ParallelEdits", "sequential", "P2P", "one branch")


@dataclass
class EvalConfig:
    pipeline: str = ""  # base-model folder; default: the committed conddiff checkpoint (see train.py)
    judge: str = ""  # scene judge folder; default: conddiff's committed checkpoints/scene_judge
    dataset: str = "shapes"  # shapes | pie_bench | pie_bench_pp
    n_per_count: int = 6  # offline records per number of edited aspects
    counts: tuple[int, ...] = (1, 2, 3)
    limit: int = 0  # real data: first N records (0 = all)
    methods: tuple[str, ...] = METHODS
    edit: EditConfig = field(default_factory=EditConfig)
    p2p: P2PConfig = field(default_factory=P2PConfig)
    clip: str | None = None  # local CLIP folder for the CLIP similarity (real data)
    seed: int = 0
    device: str = "auto"
    data_root: str | None = None


SMOKE = {"n_per_count": 1, "counts": [1, 3], "edit.steps": 3, "edit.grouping_steps": 2, "p2p.steps": 3,
         "methods": ["ParallelEdits", "sequential", "P2P"]}


def editors(cfg: EvalConfig) -> dict:
    from multiedits.editor import p2p_edit, parallel_edit, sequential_edit, single_branch_edit

    table = {"ParallelEdits": lambda p, img, prompt, asp, seed: parallel_edit(p, img, prompt, asp, cfg.edit, seed),
             "sequential": lambda p, img, prompt, asp, seed: sequential_edit(p, img, prompt, asp, cfg.edit, seed),
             "P2P": lambda p, img, prompt, asp, seed: p2p_edit(p, img, prompt, asp, cfg.p2p, seed),
             "one branch": lambda p, img, prompt, asp, seed: single_branch_edit(p, img, prompt, asp, cfg.edit, seed)}
    unknown = [m for m in cfg.methods if m not in table]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; expected some of {list(table)}")
    return {m: table[m] for m in cfg.methods}


def default_paths(cfg: EvalConfig, run: RunDir | None) -> None:
    if run is not None and not cfg.pipeline:
        info_file = run.path / "base.json"
        if not info_file.is_file():
            raise UsageError(f"'{info_file}' not found: eval.py RUN expects a multiedits train.py run folder")
        pipeline = Path(json.loads(info_file.read_text())["pipeline"])
        cfg.pipeline = str(pipeline if pipeline.is_absolute() else run.path / pipeline)
    cfg.pipeline = cfg.pipeline or str(BASE_MULTI)
    cfg.judge = cfg.judge or str(SCENE_JUDGE)


def evaluate_shapes(cfg: EvalConfig, pipe, out: Path, quiet: bool) -> dict:
    from conddiff.classifier import AttributeClassifier
    from multiedits.benchmark import run_benchmark, save_grid, summarise, summarise_by_branches
    from multiedits.data import scene_records

    judge = AttributeClassifier.load(cfg.judge, pipe.device)
    records = scene_records(cfg.n_per_count, cfg.seed, tuple(cfg.counts), pipe.image_size)
    rows, extra = run_benchmark(pipe, judge, records, editors(cfg), cfg.seed, quiet)
    save_grid(extra["images"], out / "grid.png", list(cfg.methods))
    judge_meta = json.loads((Path(cfg.judge) / "config.json").read_text())
    by_branches = summarise_by_branches(rows) if "ParallelEdits" in cfg.methods else {}
    return {"summary": summarise(rows), "by_branches": by_branches, "oracle_target_render": extra["oracle"],
            "judge_accuracy_on_renders": judge_meta.get("accuracy_on_renders"), "rows": rows}


def evaluate_real(cfg: EvalConfig, pipe, out: Path, quiet: bool) -> dict:
    import torch

    from conddiff.data import to_tensor
    from multiedits.data import load_images, load_pie_bench, load_pie_bench_pp
    from multiedits.grouping import aspects_from_edit_action, aspects_from_prompts
    from multiedits.metrics import load_clip_scorer, unedited_metrics

    records = load_pie_bench(cfg.data_root) if cfg.dataset == "pie_bench" else load_pie_bench_pp(cfg.data_root)
    records = records[:cfg.limit] if cfg.limit else records
    clip = load_clip_scorer(cfg.clip, pipe.device) if cfg.clip else None
    rows = []
    for i, rec in enumerate(progress(records, total=len(records), desc="records", quiet=quiet)):
        img, mask = load_images(rec, pipe.image_size)
        src = to_tensor(img[None]).to(pipe.device)
        if isinstance(rec.get("edit_action"), dict):
            aspects = aspects_from_edit_action(rec["edit_action"], rec.get("blended_words"))
        else:
            aspects = aspects_from_prompts(rec["source_prompt"], rec["target_prompt"])
        for name, fn in editors(cfg).items():
            res = fn(pipe, src, rec["source_prompt"], aspects, cfg.seed + i)
            row = {"id": rec["id"], "method": name, "n_aspects": len(aspects), "unet_calls": res.unet_calls,
                   "seconds": res.seconds, **unedited_metrics(res.image[0], src[0], mask)}
            if clip is not None:
                m = torch.from_numpy(mask).to(res.image)
                row["clip_whole"] = float(clip(res.image, [rec["target_prompt"]])[0])
                row["clip_edited"] = float(clip(res.image * m, [rec["target_prompt"]])[0])
            rows.append(row)
    summary = {}
    for name in cfg.methods:
        mine = [r for r in rows if r["method"] == name]
        keys = [k for k in mine[0] if k not in ("id", "method")] if mine else []
        summary[name] = {k: float(np.mean([r[k] for r in mine if r[k] is not None] or [np.nan])) for k in keys}
    return {"summary": summary, "rows": rows}


def _split_run(argv: list[str]) -> tuple[str | None, list[str]]:
    """``eval.py RUN [...]``: the first bare argument that is not ``key=value`` is the run folder; ``--run RUN``
    is an alias."""
    argv = list(argv)
    if "--run" in argv:
        k = argv.index("--run")
        run = argv[k + 1] if k + 1 < len(argv) else None
        return run, argv[:k] + argv[k + 2:]
    for k, a in enumerate(argv):
        if not a.startswith("-") and "=" not in a and (k == 0 or not argv[k - 1].startswith("--")):
            return a, argv[:k] + argv[k + 1:]
    return None, argv


@entrypoint
def main(argv: list[str] | None = None) -> dict:
    import sys

    run_arg, rest = _split_run(sys.argv[1:] if argv is None else argv)
    parser = build_parser(EvalConfig, __doc__)
    parser.add_argument("--allow-partial", action="store_true", help="evaluate a run that has not finished")
    cfg, args = parse_args(EvalConfig, rest, parser=parser, smoke=SMOKE)
    try:
        if cfg.dataset not in ("shapes", "pie_bench", "pie_bench_pp"):
            raise UsageError(f"unknown dataset {cfg.dataset!r}; expected shapes, pie_bench or pie_bench_pp")
        if cfg.dataset == "shapes" and cfg.data_root:
            raise UsageError(f"--data-root {cfg.data_root} is not read by dataset=shapes (the offline default); "
                             "it is read with dataset=pie_bench or pie_bench_pp")
        unknown = [m for m in cfg.methods if m not in METHODS]
        if unknown:
            raise UsageError(f"unknown method(s) {unknown}; expected some of {list(METHODS)}")
    except (UsageError, FileNotFoundError, ValueError) as err:
        parser.error(str(err))
    ev = None
    if run_arg:  # the run machinery checks the folder, its status and its checkpoint set
        from multiedits.train import TrainConfig

        ev = open_run(TrainConfig, [run_arg, "--threads", str(args.threads), "--device", cfg.device,
                                    *(["--allow-partial"] if args.allow_partial else [])])
    run: RunDir | None = ev.run if ev is not None else None
    try:
        default_paths(cfg, run)
    except (UsageError, FileNotFoundError, ValueError) as err:
        parser.error(str(err))
    import torch

    from conddiff.pipeline import load_pipeline

    out = run.path if run is not None else (args.out / "eval" if str(args.out) != "runs" else PROJECT / "runs" /
                                            "eval")
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)  # the editors draw their noise from per-record generators
    torch.set_num_threads(args.threads)
    pipe = load_pipeline(cfg.pipeline, select_device(cfg.device))
    if ev is not None and Path(cfg.pipeline).is_relative_to(run.path):
        ev.load({"unet": pipe.unet, "text_encoder": pipe.text_encoder})  # the verified weights of the run
    begin = time.time()
    report = evaluate_shapes(cfg, pipe, out, args.quiet) if cfg.dataset == "shapes" else evaluate_real(
        cfg, pipe, out, args.quiet)
    report = {"pipeline": cfg.pipeline if run is None else str(Path(cfg.pipeline).relative_to(run.path))
              if Path(cfg.pipeline).is_relative_to(run.path) else cfg.pipeline, "dataset": cfg.dataset,
              "seed": cfg.seed, "threads": args.threads, "edit": vars(cfg.edit), "p2p": vars(cfg.p2p), **report,
              "wall_time_s": round(time.time() - begin, 1)}
    if ev is not None:
        path = ev.save(report)
    else:
        path = out / "eval.json"
        path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {path}")
    for name, by in report["summary"].items():
        s = by.get("all", by)
        acc = f"per-aspect accuracy {s['aspect_acc']:.3f}, " if "aspect_acc" in s else ""
        psnr = s.get("psnr")
        print(f"headline {name}: {acc}unedited PSNR {'n/a' if psnr is None else f'{psnr:.2f}'} dB, "
              f"{s['unet_calls']:.1f} UNet calls, {s['seconds']:.2f} s/edit")
    return report
