"""Reproduce the CPU-scale claims: each sampling mechanism against its no-mechanism baseline, same model and seeds.

    uv run reproduce.py                 # the committed base model; writes results/claims.json and results/grid_*.png

Claims (the survey's mechanisms as their papers state them): CFG scale up -> attribute accuracy up; DDIM
inversion reconstructs far better than a fresh sample (and SDEdit trades faithfulness with t0); RePaint / DDNM
vs naive replacement for inpainting; DDNM / ILVR / DPS vs upsampling for super-resolution (DDNM consistent,
‖Ax - y‖ = 0); P2P editing keeps the background better than regeneration with the edited prompt; classifier
guidance raises attribute accuracy; composable diffusion vs one prompt naming both objects.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from conddiff.assets import BASE_MULTI, CHECKPOINTS, PROJECT
from shared.runs import package_versions, seed_everything

HERE = PROJECT


def table(rows: dict, columns: list[tuple[str, str]], first: str = "setting") -> dict:
    return {"columns": [first] + [c for c, _ in columns],
            "rows": [[name] + [vals[k] for _, k in columns] for name, vals in rows.items()], "floatfmt": ".3f"}


def main(argv: list[str] | None = None) -> Path:
    import argparse

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pipeline", default=str(BASE_MULTI))
    p.add_argument("--n", type=int, default=16)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--seed", type=int, default=0, help="the seed of every table but composition")
    p.add_argument("--composition-seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=HERE / "results")
    args = p.parse_args(argv)
    import torch

    from conddiff.classifier import AttributeClassifier
    from conddiff.evaluate import composition, image_grid, run_applications
    from conddiff.pipeline import load_pipeline

    seed_everything(args.seed)
    torch.set_num_threads(args.threads)
    pipe = load_pipeline(args.pipeline, "cpu")
    judge = AttributeClassifier.load(CHECKPOINTS / "judge")
    noisy = AttributeClassifier.load(CHECKPOINTS / "noisy_classifier")
    scene_judge = AttributeClassifier.load(CHECKPOINTS / "scene_judge")
    start = time.time()
    res, grids = run_applications(pipe, judge, noisy, args.n, args.steps, args.seed, sweep=True)
    per_seed = [composition(pipe, scene_judge, args.n, s + 5, args.steps) for s in args.composition_seeds]
    grids["composition"] = per_seed[0][1]
    res["composition_per_seed"] = [r for r, _ in per_seed]
    res["composition"] = {m: {k: float(np.mean([r[m][k] for r, _ in per_seed])) for k in per_seed[0][0][m]}
                          for m in per_seed[0][0]}
    judge_acc = json.loads((CHECKPOINTS / "judge" / "config.json").read_text())["accuracy_on_renders"]
    attrs = [("colour", "colour"), ("shape", "shape"), ("size", "size"), ("position", "position"),
             ("background", "background"), ("all five", "all")]
    t2i = dict(res["text_to_image"])
    t2i = {"judge on real renders (upper bound)": {**judge_acc, "all": None}, **t2i}
    tables = {
        "text_to_image": table(t2i, attrs),
        "inversion": table(res["inversion"], [("PSNR (dB)", "psnr"), ("SSIM", "ssim")]),
        "inpainting": table(res["inpainting"], [("PSNR hole (dB)", "psnr_hole"), ("PSNR seam band (dB)", "psnr_seam"),
                                                ("SSIM", "ssim"), ("max |error| known", "known_max_abs_err")]),
        "super_resolution": table(res["super_resolution"], [("PSNR (dB)", "psnr"), ("SSIM", "ssim"),
                                                            ("‖A x - y‖", "consistency_l2")]),
        "editing": table(res["editing"], [("target colour", "target_colour_acc"), ("shape kept", "kept_shape_acc"),
                                          ("position kept", "kept_position_acc"),
                                          ("background PSNR (dB)", "background_psnr")]),
        "composition": table(res["composition"], [
            ("2 objects: object right", "object_acc_2"), ("2: all objects", "all_objects_2"),
            ("2: no extra", "no_extra_2"), ("3 objects: object right", "object_acc_3"),
            ("3: all objects", "all_objects_3"), ("3: no extra", "no_extra_3")]),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    payload = {"tables": tables, "seeds": [args.seed], "composition_seeds": args.composition_seeds,
               "threads": args.threads, "n_per_setting": args.n, "ddim_steps": args.steps,
               "versions": package_versions("conddiff", "torch", "diffusers", "transformers"),
               "wall_time_s": round(time.time() - start, 1), "command": "uv run reproduce.py " + " ".join(
                   sys.argv[1:] if argv is None else argv),
               "pipeline": str(Path(args.pipeline).resolve().relative_to(HERE)) if Path(
                   args.pipeline).resolve().is_relative_to(HERE) else args.pipeline,
               "raw": res}
    (args.out / "claims.json").write_text(json.dumps(payload, indent=2) + "\n")
    for name, rows in grids.items():
        image_grid(rows, args.out / f"grid_{name}.png")
    print(f"wrote {args.out / 'claims.json'} in {payload['wall_time_s']} s")
    return args.out / "claims.json"


if __name__ == "__main__":
    main()
