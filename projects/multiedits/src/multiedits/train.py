"""Fine-tune the base text-to-image model on multi-object scenes for a short schedule, then check that
ParallelEdits edits with it.

ParallelEdits is training-free: it edits with a pretrained text-to-image diffusion model (the paper: the LCM
``SimianLuo/LCM_Dreamshaper_v7``). Offline, the base model is the small pixel-space shapes-world model of
``projects/conddiff`` (``conddiff.assets.BASE_MULTI``). This script does real work with it:

1. fine-tunes it for ``finetune_steps`` steps on fresh 1-3-object scenes through conddiff's own trainer
   (``conddiff.train.main``: its ``configs/base_multi.yaml`` schedule, ``init_from`` the base), a nested run
   folder ``<run>/base/<date>-<time>-t2i/``; ``finetune_steps=0`` reuses the base as it is; ``--smoke`` trains a
   tiny base model from scratch in seconds;
2. runs ParallelEdits on a few multi-object edit records (aspects on different objects and the background) and
   reports the scene judge's per-aspect accuracy and the branches the grouping made.

    uv run train.py                  # ~60 fine-tuning steps + the editing check
    uv run train.py finetune_steps=0 # only the editing check on the committed base model
    uv run train.py --smoke          # seconds
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from conddiff.assets import BASE_MULTI, CONFIGS, SCENE_JUDGE
from multiedits.editor import EditConfig
from shared.runs import UsageError, entrypoint, start

PROJECT = Path(__file__).resolve().parents[2]


@dataclass
class TrainConfig:
    base: str = ""  # base-model folder to fine-tune / edit with; default conddiff's committed BASE_MULTI
    finetune_steps: int = 60  # fine-tuning steps on 1-3-object scenes (0: use the base as it is)
    finetune_lr: float = 2e-4
    judge: str = ""  # scene judge; default conddiff's committed checkpoints/scene_judge
    check_per_count: int = 2  # records per aspect count in the editing check (0: skip)
    check_counts: tuple[int, ...] = (1, 2, 3)
    edit: EditConfig = field(default_factory=EditConfig)
    nan_at_step: int = 0  # > 0: NaN loss at this fine-tuning step (tests the divergence guard)
    seed: int = 0
    device: str = "auto"


SMOKE = {"check_per_count": 1, "check_counts": [2], "edit.steps": 3, "edit.grouping_steps": 2}


def base_path(cfg: TrainConfig) -> Path:
    return Path(cfg.base) if cfg.base else BASE_MULTI


def judge_path(cfg: TrainConfig) -> Path:
    return Path(cfg.judge) if cfg.judge else SCENE_JUDGE


def check_inputs(cfg: TrainConfig, args) -> None:
    if not args.smoke and not (base_path(cfg) / "unet" / "config.json").is_file():
        raise UsageError(f"base={base_path(cfg)}: no base-model folder (diffusers layout: unet/, text_encoder/, ...)")
    if cfg.check_per_count > 0 and not (judge_path(cfg) / "model.safetensors").is_file():
        raise UsageError(f"judge={judge_path(cfg)}: no scene judge there (projects/conddiff: uv run train_judge.py "
                         "--slots), or check_per_count=0")
    if cfg.finetune_steps < 0:
        raise UsageError(f"finetune_steps must be >= 0, got {cfg.finetune_steps}")


def finetune(cfg: TrainConfig, run, smoke: bool, threads: int, quiet: bool) -> dict:
    """Stage 1: the base model to edit with; returns base.json (paths relative to the run folder)."""
    from conddiff import train as conddiff_train

    info_file = run.path / "base.json"
    info = json.loads(info_file.read_text()) if info_file.is_file() else {}
    common = ["--threads", str(threads), *(["--quiet"] if quiet else [])]
    if info.get("conddiff_run"):  # resumed: finish (or just reopen) the nested conddiff run
        nested = run.path / info["conddiff_run"]
        if json.loads((nested / "status.json").read_text()).get("state") != "finished":
            conddiff_train.main(["--resume", str(nested), *common])
        return {"pipeline": f"{info['conddiff_run']}/pipeline", "trained": True, "conddiff_run": info["conddiff_run"]}
    if not smoke and cfg.finetune_steps == 0:
        return {"pipeline": str(base_path(cfg)), "trained": False, "conddiff_run": None}
    out = run.path / "base"
    if smoke:
        argv = ["--smoke", "--out", str(out), "--seed", str(cfg.seed), *common, "eval_samples=0"]
    else:
        argv = ["--config", str(CONFIGS / "base_multi.yaml"), "--out", str(out), "--seed", str(cfg.seed), *common,
                f"init_from={base_path(cfg)}", f"steps={cfg.finetune_steps}", f"lr={cfg.finetune_lr}",
                "warmup_steps=5", f"ckpt_every={max(1, cfg.finetune_steps // 3)}", "log_every=10"]
    if cfg.nan_at_step:
        argv.append(f"nan_at_step={cfg.nan_at_step}")
    out.mkdir(exist_ok=True)
    nested = conddiff_train.main(argv)
    rel = str(Path(nested).relative_to(run.path))
    return {"pipeline": f"{rel}/pipeline", "trained": True, "conddiff_run": rel}


def _nested_run(run) -> str | None:
    base = run.path / "base"
    found = sorted(p for p in base.iterdir() if (p / "config.json").is_file()) if base.is_dir() else []
    return str(found[-1].relative_to(run.path)) if found else None


@entrypoint
def main(argv: list[str] | None = None) -> Path:
    s = start(TrainConfig, argv, tag=lambda c: "base", description=__doc__, smoke=SMOKE, check=check_inputs,
              packages=("multiedits", "conddiff", "torch", "diffusers"))
    cfg, run = s.cfg, s.run
    if s.resumed and not (run.path / "base.json").is_file() and _nested_run(run):
        run.write_json("base.json", {"pipeline": None, "trained": True, "conddiff_run": _nested_run(run)})
    begin = time.time()
    info = finetune(cfg, run, s.args.smoke, s.args.threads, s.args.quiet)
    run.write_json("base.json", info)
    pipeline = Path(info["pipeline"]) if Path(info["pipeline"]).is_absolute() else run.path / info["pipeline"]
    summary = {"pipeline": info["pipeline"], "trained": info["trained"], "base_seconds": round(time.time() - begin, 1)}
    if info["conddiff_run"]:
        train_summary = json.loads((run.path / info["conddiff_run"] / "eval.json").read_text())["train"]
        summary["finetune_final_loss"] = train_summary["final_loss"]

    from conddiff.pipeline import load_pipeline

    pipe = load_pipeline(pipeline, s.device)
    # the weights this run edits with, as a verified checkpoint set (eval.py RUN checks and loads it)
    run.save_checkpoint("last", {"unet": pipe.unet, "text_encoder": pipe.text_encoder},
                        state={"step": cfg.finetune_steps if info["trained"] else 0, "pipeline": info["pipeline"]})
    if cfg.check_per_count > 0:
        from conddiff.classifier import AttributeClassifier
        from multiedits.benchmark import run_benchmark, summarise
        from multiedits.data import scene_records
        from multiedits.editor import parallel_edit

        judge = AttributeClassifier.load(judge_path(cfg), s.device)
        records = scene_records(cfg.check_per_count, cfg.seed, tuple(cfg.check_counts), pipe.image_size)
        method = {"ParallelEdits": lambda p, img, prompt, aspects, seed: parallel_edit(p, img, prompt, aspects,
                                                                                        cfg.edit, seed)}
        rows, _ = run_benchmark(pipe, judge, records, method, cfg.seed, quiet=s.args.quiet)
        sm = summarise(rows)["ParallelEdits"]["all"]
        summary.update({"check_records": len(records), "aspect_acc": sm["aspect_acc"], "kept_acc": sm["kept_acc"],
                        "unedited_psnr": sm["psnr"], "seconds_per_edit": sm["seconds"],
                        "branches_per_edit": sum(r["n_branches"] for r in rows) / len(rows)})
        for k, r in enumerate(rows):
            run.log_metrics(step=k + 1, aspect_acc=r["aspect_acc"], n_branches=r["n_branches"],
                            seconds=r["seconds"])
    summary["wall_time_s"] = round(time.time() - begin, 1)
    run.finish(summary)
    s.log(f"run folder: {run.path}")
    if "aspect_acc" in summary:
        psnr = summary["unedited_psnr"]
        s.log(f"headline: ParallelEdits per-aspect accuracy {summary['aspect_acc']:.3f} on "
              f"{summary['check_records']} multi-object records ({min(cfg.check_counts)}-{max(cfg.check_counts)} "
              f"aspects), "
              f"{summary['branches_per_edit']:.2f} branches/edit, kept facts {summary['kept_acc']:.3f}, unedited "
              f"PSNR {'n/a' if psnr is None else f'{psnr:.2f} dB'}, {summary['seconds_per_edit']:.2f} s/edit")
    return run.path
