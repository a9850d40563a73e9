"""Evaluate a base model on the applications the survey centres on; writes eval.json and one grid per application.

    uv run eval.py runs/<run>                       # a train.py run: its EMA weights (checkpoint set "last")
    uv run eval.py                                  # the committed checkpoint (checkpoints/base_multi) -> --out
    uv run eval.py --pipeline /path/to/sd-folder    # any diffusers folder (latent models: the latent-safe parts)

With a run, everything is written inside the run folder (``eval.json["eval"]`` merged with what train.py wrote,
plus ``grid_*.png``), with the evaluated checkpoint's step. Scores: text-to-image attribute accuracy per CFG scale
and with classifier guidance (single-object prompts, the attribute judge); DDIM-inversion reconstruction PSNR
(SDEdit, fresh-sample baselines); inpainting (replacement, RePaint, DDNM); 2x super-resolution (ILVR, DDNM, DPS);
P2P colour edits; composition on 2- and 3-object prompts (one prompt vs composable diffusion, the scene judge).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from conddiff.assets import BASE_MULTI, JUDGE, NOISY_CLASSIFIER, PROJECT, SCENE_JUDGE
from shared.runs import build_eval_parser, entrypoint, open_run, select_device


def build_argument_parser():
    p = build_eval_parser(__doc__)
    p.add_argument("--pipeline", default=None, help=f"a base-model folder instead of a run (default {BASE_MULTI})")
    p.add_argument("--out", type=Path, default=None, help="where to write without a run (default runs/eval-base)")
    p.add_argument("--n", type=int, default=16, help="prompts / images per application (default 16)")
    p.add_argument("--steps", type=int, default=20, help="DDIM steps (default 20)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--smoke", action="store_true", help="2 images, 2 steps")
    return p


def evaluate(pipe, out: Path, n: int, steps: int, seed: int, device, quiet: bool) -> dict:
    """Every application on ``pipe``; grids into ``out``; returns the results."""
    import torch

    from conddiff.classifier import AttributeClassifier
    from conddiff.evaluate import image_grid, run_applications

    torch.manual_seed(seed)
    judge = AttributeClassifier.load(JUDGE, device)
    noisy = AttributeClassifier.load(NOISY_CLASSIFIER, device)
    scene = AttributeClassifier.load(SCENE_JUDGE, device) if (SCENE_JUDGE / "model.safetensors").is_file() else None
    start = time.time()
    results, grids = run_applications(pipe, judge, noisy, n, steps, seed, scene_judge=scene, quiet=quiet)
    out.mkdir(parents=True, exist_ok=True)
    for name, rows in grids.items():
        image_grid(rows, out / f"grid_{name}.png")
    judge_meta = json.loads((JUDGE / "config.json").read_text())
    return {"n": n, "steps": steps, "seed": seed, "judge_accuracy_on_renders": judge_meta.get("accuracy_on_renders"),
            **results, "wall_time_s": round(time.time() - start, 1)}


@entrypoint
def main(argv: list[str] | None = None) -> dict:
    parser = build_argument_parser()
    args = parser.parse_args(argv)
    n, steps = (2, 2) if args.smoke else (args.n, args.steps)
    from conddiff.pipeline import load_pipeline

    if args.run is not None or args.run_option is not None:
        from conddiff.pipeline import Pipeline
        from conddiff.train import TrainConfig, build_pipeline

        ev = open_run(TrainConfig, argv, parser=parser)
        pipe = build_pipeline(ev.cfg)
        ev.load({"ema_unet": pipe.unet, "ema_text_encoder": pipe.text_encoder})
        pipe = Pipeline(pipe.unet, pipe.text_encoder, pipe.tokenizer, pipe.scheduler, None, pipe.pixel_unshuffle,
                        pipe.image_size).to(ev.device).eval()
        results = evaluate(pipe, ev.run.path, n, steps, args.seed, ev.device, args.quiet)
        path = ev.save(results)
    else:
        import torch

        torch.set_num_threads(args.threads)
        device = select_device(args.device)
        source = args.pipeline or str(BASE_MULTI)
        pipe = load_pipeline(source, device)
        out = args.out or PROJECT / "runs" / "eval-base"
        results = evaluate(pipe, out, n, steps, args.seed, device, args.quiet)
        results["pipeline"] = source
        path = out / "eval.json"
        path.write_text(json.dumps(results, indent=2) + "\n")
    t2i = results["text_to_image"]
    print(f"wrote {path} and the grids beside it")
    print("headline: " + ", ".join(f"{k}: colour {v['colour']:.2f} shape {v['shape']:.2f}" for k, v in t2i.items()))
    return results
