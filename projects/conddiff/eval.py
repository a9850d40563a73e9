"""Evaluate a base model on the applications the survey centres on; writes eval.json and one grid per application.

    uv run eval.py                                  # the committed checkpoint (checkpoints/base)
    uv run eval.py --run runs/<run>                 # the pipeline a train.py run saved
    uv run eval.py pipeline=/path/to/sd-folder ...  # any diffusers folder (latent models: the latent-safe parts)

Scores (single-object shapes-world prompts; the judge is an attribute classifier trained on real renders, its
own accuracy on renders is reported alongside): text-to-image attribute accuracy per CFG scale and with
classifier guidance; DDIM-inversion reconstruction PSNR (SDEdit, fresh-sample baselines); inpainting PSNR / SSIM
/ seam PSNR (replacement, RePaint, DDNM); 2x super-resolution (ILVR, DDNM, DPS); P2P colour edits (target
colour, background PSNR); composable diffusion (both objects present).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from conddiff.classifier import AttributeClassifier
from conddiff.evaluate import image_grid, run_applications
from conddiff.pipeline import load_pipeline
from shared.runs import parse_args, seed_everything, select_device
from shared.runs.cli import build_parser

HERE = Path(__file__).resolve().parent


@dataclass
class EvalConfig:
    pipeline: str = str(HERE / "checkpoints" / "base")
    judge: str = str(HERE / "checkpoints" / "judge")
    noisy_classifier: str = str(HERE / "checkpoints" / "noisy_classifier")
    n: int = 16  # prompts / images per application
    steps: int = 20  # DDIM steps
    seed: int = 0
    device: str = "auto"


SMOKE = {"n": 2, "steps": 2}


def main(argv: list[str] | None = None) -> Path:
    parser = build_parser(EvalConfig, __doc__)
    parser.add_argument("--run", default=None, help="a train.py run folder: evaluate its pipeline/, write there")
    cfg, args = parse_args(EvalConfig, argv, parser=parser, smoke=SMOKE)
    if args.run:
        cfg.pipeline = str(Path(args.run) / "pipeline")
    out = Path(args.out or (args.run or HERE / "runs" / "eval"))
    out.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.seed)
    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads()))))
    device = select_device(cfg.device)
    pipe = load_pipeline(cfg.pipeline, device)
    judge = AttributeClassifier.load(cfg.judge, device)
    noisy = AttributeClassifier.load(cfg.noisy_classifier, device)
    start = time.time()
    results, grids = run_applications(pipe, judge, noisy, cfg.n, cfg.steps, cfg.seed)
    judge_meta = json.loads((Path(cfg.judge) / "config.json").read_text())
    report = {"pipeline": cfg.pipeline, "n": cfg.n, "steps": cfg.steps, "seed": cfg.seed,
              "judge_accuracy_on_renders": judge_meta.get("accuracy_on_renders"), **results,
              "wall_time_s": round(time.time() - start, 1)}
    (out / "eval.json").write_text(json.dumps(report, indent=2) + "\n")
    for name, rows in grids.items():
        image_grid(rows, out / f"grid_{name}.png")
    t2i = results["text_to_image"]
    print(f"wrote {out / 'eval.json'} and {len(grids)} grids")
    print("headline: " + ", ".join(f"{k}: colour {v['colour']:.2f} shape {v['shape']:.2f}" for k, v in t2i.items()))
    return out


if __name__ == "__main__":
    main()
