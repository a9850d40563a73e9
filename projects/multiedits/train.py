"""Make the base text-to-image model available, then check that ParallelEdits edits with it.

ParallelEdits is training-free: it edits with a pretrained text-to-image diffusion model (the paper: the LCM
``SimianLuo/LCM_Dreamshaper_v7``). Offline, the base model is the small pixel-space shapes-world model that
``projects/conddiff`` trains (diffusers folder layout). This script

1. reuses the committed checkpoint ``projects/conddiff/checkpoints/base`` when it is there (default), or trains
   one through conddiff's own ``train.py`` (``--retrain``, or when the checkpoint is missing; a ~10-minute CPU
   schedule, ``configs/cpu.yaml`` -> ``conddiff_config``); ``--smoke`` trains a tiny one in seconds;
2. writes ``base.json`` (the pipeline folder eval.py will use) into the run folder;
3. runs ParallelEdits on a few offline multi-aspect records and reports the judged per-aspect accuracy.

    uv run train.py                  # committed base model + a ~1-minute editing check
    uv run train.py --retrain        # train a base model through conddiff (10 min), then the check
    uv run train.py --smoke          # seconds
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from conddiff.classifier import AttributeClassifier
from conddiff.pipeline import load_pipeline
from multiedits.benchmark import run_benchmark, summarise
from multiedits.data import benchmark_records
from multiedits.editor import EditConfig, parallel_edit
from multiedits.paths import CONDDIFF_CPU_CONFIG, CONDDIFF_TRAIN, DEFAULT_BASE, DEFAULT_JUDGE
from shared.runs import RunDir, parse_args, seed_everything, select_device
from shared.runs.cli import build_parser

HERE = Path(__file__).resolve().parent


@dataclass
class TrainConfig:
    base: str = str(DEFAULT_BASE)  # the committed base model, reused when present
    conddiff_config: str = str(CONDDIFF_CPU_CONFIG)  # schedule when a base model is trained here
    retrain: bool = False  # train a base model even if the committed one exists
    judge: str = str(DEFAULT_JUDGE)  # attribute judge (conddiff's train_judge.py)
    check_per_count: int = 4  # records per aspect count in the final editing check (0: skip)
    check_counts: tuple[int, ...] = (1, 2)
    edit: EditConfig = field(default_factory=EditConfig)
    seed: int = 0
    device: str = "auto"


SMOKE = {"check_per_count": 1, "check_counts": [2], "edit.steps": 3, "edit.grouping_steps": 2}


def conddiff_train_main():
    """conddiff's ``train.py`` ``main(argv)``, loaded from its file under a name of its own (it is a script,
    not part of the conddiff package)."""
    spec = importlib.util.spec_from_file_location("conddiff_train_script", CONDDIFF_TRAIN)
    module = sys.modules.get(spec.name)
    if module is None:
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses resolve their module through sys.modules
        spec.loader.exec_module(module)
    return module.main


def make_base_available(cfg: TrainConfig, run: RunDir, smoke: bool, quiet: bool, resume: Path | None) -> dict:
    """Reuse the committed base model or train one through conddiff; returns the base.json record."""
    if resume is not None and (resume / "base.json").is_file():
        info = json.loads((resume / "base.json").read_text())
        if info.get("conddiff_run"):  # a base-model training that was interrupted: continue it
            conddiff_train_main()(["--resume", info["conddiff_run"], *(["--quiet"] if quiet else [])])
        return info
    committed = Path(cfg.base)
    if not (smoke or cfg.retrain) and (committed / "unet" / "config.json").is_file():
        run.log(f"reusing the committed base model {committed}", quiet=quiet)
        return {"pipeline": str(committed), "trained": False, "conddiff_run": None}
    run.log("training a base model through conddiff's train.py" + (" (smoke)" if smoke else ""), quiet=quiet)
    argv = ["--config", cfg.conddiff_config, "--out", str(run.path / "conddiff"), "--device", cfg.device,
            "--seed", str(cfg.seed), *(["--smoke"] if smoke else []), *(["--quiet"] if quiet else [])]
    if smoke:
        argv.append("eval_samples=0")
    (run.path / "conddiff").mkdir(exist_ok=True)
    info = {"pipeline": None, "trained": True, "conddiff_run": None}
    run.write_json("base.json", info)  # so that --resume finds the conddiff run if this one is killed
    conddiff_run = conddiff_train_main()(argv)
    return {"pipeline": str(Path(conddiff_run) / "pipeline"), "trained": True, "conddiff_run": str(conddiff_run)}


def main(argv: list[str] | None = None) -> Path:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(TrainConfig, __doc__)
    parser.add_argument("--retrain", action="store_true", help="train a base model even if one is committed")
    cfg, args = parse_args(TrainConfig, argv, parser=parser, smoke=SMOKE)
    cfg.retrain = cfg.retrain or args.retrain
    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads()))))
    if args.resume:
        run = RunDir.open(args.resume)
        cfg = run.read_config(TrainConfig)
    else:
        run = RunDir.create(args.out or HERE / "runs", "smoke" if args.smoke else "base")
        run.write_config(cfg, "multiedits", "conddiff", "torch", "diffusers")
    seed_everything(cfg.seed, args.deterministic)
    device = select_device(cfg.device)
    start = time.time()
    info = make_base_available(cfg, run, args.smoke, args.quiet, Path(args.resume) if args.resume else None)
    run.write_json("base.json", info)
    pipe = load_pipeline(info["pipeline"], device)
    summary = {"pipeline": info["pipeline"], "trained": info["trained"], "base_seconds": round(time.time() - start, 1)}

    if cfg.check_per_count > 0:
        judge = AttributeClassifier.load(cfg.judge, device)
        records = benchmark_records(cfg.check_per_count, cfg.seed, tuple(cfg.check_counts), pipe.image_size)
        method = {"ParallelEdits": lambda p, img, prompt, aspects, seed: parallel_edit(p, img, prompt, aspects,
                                                                                        cfg.edit, seed)}
        rows, _ = run_benchmark(pipe, judge, records, method, cfg.seed, quiet=args.quiet)
        s = summarise(rows)["ParallelEdits"]["all"]
        summary.update({"check_records": len(records), "aspect_acc": s["aspect_acc"], "kept_acc": s["kept_acc"],
                        "unedited_psnr": s["psnr"], "seconds_per_edit": s["seconds"]})
        for r in rows:
            run.log_metrics(step=int(r["id"]), aspect_acc=r["aspect_acc"], psnr=r["psnr"], seconds=r["seconds"])
    summary["wall_time_s"] = round(time.time() - start, 1)
    run.write_json("train_summary.json", summary)
    run.log(f"run folder: {run.path}", quiet=args.quiet)
    if "aspect_acc" in summary:
        psnr = summary["unedited_psnr"]
        run.log(f"headline: ParallelEdits per-aspect accuracy {summary['aspect_acc']:.3f} on "
                f"{summary['check_records']} records ({', '.join(map(str, cfg.check_counts))} aspects), kept "
                f"attributes {summary['kept_acc']:.3f}, unedited PSNR "
                f"{'n/a' if psnr is None else f'{psnr:.2f} dB'}, {summary['seconds_per_edit']:.2f} s/edit "
                f"(base model: {info['pipeline']})", quiet=args.quiet)
    return run.path


if __name__ == "__main__":
    main()
