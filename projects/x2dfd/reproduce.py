"""The CPU-scale X²-DFD claim: each module helps. Same data, budget and seeds for

  (a) plain   -- the MLLM LoRA-fine-tuned on bare "This image is real./fake." answers,
  (b) + SFS   -- answers explained with the MFA top-ranked features,
  (c) + WFS   -- (b) plus the SBI-trained blending expert's score in the question and the answer supplement,

reporting frame and video AUC on held-out identities, held-out manipulation types and a held-out face family,
the expert alone, the MFA ranking and example explanations. Writes results/reproduce.json.

    uv run reproduce.py                  # configs/cpu.yaml, seed 0
    uv run reproduce.py --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import train
from shared.runs import package_versions

HERE = Path(__file__).resolve().parent
VARIANTS = {
    "(a) plain answers": ["use_sfs=false", "use_wfs=false"],
    "(b) + SFS explanations": ["use_sfs=true", "use_wfs=false"],
    "(c) + SFS + WFS blending expert": ["use_sfs=true", "use_wfs=true"],
}
SPLITS = ("in_domain", "unseen_manip", "unseen_family")


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--out", type=Path, default=HERE / "runs" / "reproduce")
    ap.add_argument("--results", type=Path, default=HERE / "results" / "reproduce.json")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--jobs", type=int, default=1, help="train the variants in parallel processes")
    ap.add_argument("overrides", nargs="*", metavar="key=value")
    args = ap.parse_args(argv)
    t0 = time.time()
    raw: dict[str, list[dict]] = {name: [] for name in VARIANTS}
    runs: dict[str, list[str]] = {name: [] for name in VARIANTS}
    jobs = [(name, [*(["--smoke"] if args.smoke else []), "--quiet", "--device", "cpu", "--seed", str(seed),
                    "--out", str(args.out), *flags, *args.overrides])
            for seed in args.seeds for name, flags in VARIANTS.items()]
    if args.jobs > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(args.jobs, mp_context=mp.get_context("spawn")) as pool:
            results = list(pool.map(train.main, [argv for _, argv in jobs]))
    else:
        results = [train.main(argv) for _, argv in jobs]
    cpu = 0.0
    for (name, _), res in zip(jobs, results):
        raw[name].append(res["metrics"])
        runs[name].append(res["run"])
        cpu += res["cpu_time_s"]

    def mean(name: str, split: str, key: str) -> float:
        return float(np.mean([m[split][key] for m in raw[name]]))

    cols = ["variant"] + [f"{s} {k}" for s in SPLITS for k in ("frame", "video")]
    rows = [[name] + [mean(name, s, f"{k}_auc") for s in SPLITS for k in ("frame", "video")] for name in VARIANTS]
    wfs_name = list(VARIANTS)[-1]
    rows.append(["blending expert alone (SBI-trained CNN)"]
                + [v for s in SPLITS for v in (mean(wfs_name, s, "expert_frame_auc"), None)])
    mans = sorted(k[len("frame_auc_"):] for k in raw[wfs_name][0]["unseen_manip"] if k.startswith("frame_auc_"))
    fam = sorted(k[len("frame_auc_"):] for k in raw[wfs_name][0]["unseen_family"] if k.startswith("frame_auc_"))
    per_man = {"columns": ["variant"] + [f"unseen_manip {m}" for m in mans] + [f"unseen_family {m}" for m in fam],
               "rows": [[name] + [mean(name, "unseen_manip", f"frame_auc_{m}") for m in mans]
                        + [mean(name, "unseen_family", f"frame_auc_{m}") for m in fam] for name in VARIANTS],
               "floatfmt": ".3f"}

    last_run = Path(runs[wfs_name][0])
    ranking = json.loads((last_run / "mfa.json").read_text())
    mfa_rows = [[i + 1, q, a, p] for i, (q, a, p) in enumerate(zip(ranking["questions"], ranking["balanced_accuracy"],
                                                                    ranking["mean_p_yes"]))]
    examples = json.loads((last_run / "eval.json").read_text())["examples"]
    ex_rows = [[split, e["manipulation"], "fake" if e["label"] else "real", e["question"].split("? ", 1)[-1]
                if "score" in e["question"] else "-", e["p_fake"], e["answer"]]
               for split, exs in examples.items() for e in exs[:3]]
    wall = time.time() - t0
    out = {
        "tables": {
            "detection": {"columns": cols, "rows": rows, "floatfmt": ".3f"},
            "per_manipulation": per_man,
            "mfa": {"columns": ["rank", "feature (question)", "balanced accuracy", "mean P(yes)"], "rows": mfa_rows,
                    "floatfmt": ".3f"},
            "explanations": {"columns": ["split", "manipulation", "label", "expert score", "P(fake)",
                                         "generated answer"], "rows": ex_rows, "floatfmt": ".3f"},
        },
        "seeds": args.seeds,
        "versions": package_versions("x2dfd", "torch", "transformers", "peft", "numpy"),
        "wall_time_s": round(wall, 1),
        "cpu_time_s": round(cpu, 1),
        "jobs": args.jobs,
        "command": " ".join(["uv run reproduce.py"] + (["--smoke"] if args.smoke else [])
                            + ([f"--jobs {args.jobs}"] if args.jobs > 1 else [])
                            + (["--seeds", *map(str, args.seeds)] if args.seeds != [0] else []) + args.overrides),
        "raw": raw,
        "runs": runs,
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(out, indent=1) + "\n")
    for r in rows:
        print(r[0].ljust(42), " ".join("  -  " if v is None else f"{v:.3f}" for v in r[1:]))
    print(f"wrote {args.results} in {wall:.0f} s wall ({cpu:.0f} s CPU in the training processes)")
    return out


if __name__ == "__main__":
    main()
