"""The CPU-scale X²-DFD ablation over several seeds, with paired differences. For every seed, same data, base
MLLM, MFA ranking, expert, LoRA init and budget for

  plain          -- LoRA on bare "This image is real./fake." answers,
  +SFS           -- answers explained with the MFA top-ranked features (the base MLLM's own assessment),
  +WFS (no SFS)  -- bare answers, the blending expert's score in the question and the answer supplement,
  +SFS+WFS       -- both (the full X²-DFD),
  expert alone   -- the SBI-trained blending expert's own P(fake),

reporting frame and video AUC on held-out identities, held-out manipulation types and a held-out face family,
per manipulation type, paired differences against plain (mean, sd and sign count over seeds), the MFA ranking
of the base MLLM on the ImageNet vision tower vs a random one (balanced accuracy of the chosen features on
held-out images), and example explanations. Writes results/reproduce.json.

    uv run reproduce.py                      # configs/cpu.yaml, seeds 0-4, one thread
    uv run reproduce.py --seeds 0 1 --smoke  # seconds per run
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

PROJECT = Path(__file__).resolve().parents[2]
VARIANTS = {  # the full method first: it pre-trains the base, runs MFA and trains the expert; the others reuse them
    "+SFS+WFS": ["use_sfs=true", "use_wfs=true"],
    "plain": ["use_sfs=false", "use_wfs=false"],
    "+SFS": ["use_sfs=true", "use_wfs=false"],
    "+WFS (no SFS)": ["use_sfs=false", "use_wfs=true"],
}
ORDER = ("plain", "+SFS", "+WFS (no SFS)", "+SFS+WFS")
SPLITS = ("in_domain", "unseen_manip", "unseen_family")


def _stats(values) -> tuple[float, float]:
    """Mean and sample sd over seeds, ignoring NaN (an undefined correlation when every answer is the same)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if not len(v):
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def summarise(raw: dict[str, list[dict]], mfa_runs: list[dict], null_runs: list[dict], sfs_runs: list[dict],
              seeds: list[int]) -> dict:
    """Tables from the per-seed metrics of every variant (``raw[variant][k]`` = seed ``seeds[k]``)."""
    full = raw["+SFS+WFS"]
    cols = ["variant"] + [f"{s} {k}" for s in SPLITS for k in ("frame", "video")]
    rows = []
    for name in ORDER:
        row = [name]
        for s in SPLITS:
            for k in ("frame", "video"):
                m, sd = _stats([r[s][f"{k}_auc"] for r in raw[name]])
                row.append(f"{m:.3f} ± {sd:.3f}")
        rows.append(row)
    rows.append(["expert alone"] + [c for s in SPLITS for c in (
        "{:.3f} ± {:.3f}".format(*_stats([r[s]["expert_frame_auc"] for r in full])), None)])

    # paired differences against plain: mean ± sd over seeds and how many seeds are > 0
    diff_cols = ["difference (paired by seed)"] + [f"{s} {k}" for s in SPLITS for k in ("frame", "video")]
    diff_rows = []
    pairs = [("+SFS", "plain"), ("+WFS (no SFS)", "plain"), ("+SFS+WFS", "plain"), ("+SFS+WFS", "+WFS (no SFS)"),
             ("+SFS+WFS", "+SFS")]
    for a, b in pairs:
        row = [f"{a} − {b}"]
        for s in SPLITS:
            for k in ("frame", "video"):
                d = np.array([ra[s][f"{k}_auc"] - rb[s][f"{k}_auc"] for ra, rb in zip(raw[a], raw[b])])
                row.append(f"{d.mean():+.3f} ± {_stats(d)[1]:.3f} ({int((d > 0).sum())}/{len(d)})")
        diff_rows.append(row)
    d_exp = []
    for s in SPLITS:
        d = np.array([r[s]["frame_auc"] - r[s]["expert_frame_auc"] for r in full])
        d_exp += [f"{d.mean():+.3f} ± {_stats(d)[1]:.3f} ({int((d > 0).sum())}/{len(d)})", None]
    diff_rows.append(["+SFS+WFS − expert alone (frame)"] + d_exp)

    # per manipulation type (frame AUC of each fake type against the split's reals)
    keys = [(s, k[len("frame_auc_"):]) for s in SPLITS[1:] for k in sorted(full[0][s]) if k.startswith("frame_auc_")]
    per_man = {"columns": ["variant"] + [f"{s} {m}" for s, m in keys],
               "rows": [[name] + ["{:.3f} ± {:.3f}".format(*_stats([r[s][f"frame_auc_{m}"] for r in raw[name]]))
                                  for s, m in keys] for name in ORDER]}
    per_man_diff = {"columns": ["difference (paired by seed)"] + [f"{s} {m}" for s, m in keys], "rows": []}
    for a, b in pairs[:3]:
        row = [f"{a} − {b}"]
        for s, m in keys:
            d = np.array([ra[s][f"frame_auc_{m}"] - rb[s][f"frame_auc_{m}"] for ra, rb in zip(raw[a], raw[b])])
            row.append(f"{d.mean():+.3f} ({int((d > 0).sum())}/{len(d)})")
        per_man_diff["rows"].append(row)

    # MFA: does the ranking carry signal? Balanced accuracy of the chosen features on the training subset and on
    # held-out images (in_domain; nothing is chosen with them), pre-trained vs untrained base MLLM
    def mfa_row(label: str, rankings: list[dict]) -> list:
        top1 = [r["balanced_accuracy"][0] for r in rankings]
        held1 = [r["heldout_balanced_accuracy"][0] for r in rankings]
        held3 = [float(np.mean(r["heldout_balanced_accuracy"][:3])) for r in rankings]
        spread = [float(np.max(np.abs(np.asarray(r["heldout_balanced_accuracy"]) - 0.5))) for r in rankings]
        rho = [float(np.corrcoef(r["balanced_accuracy"], r["heldout_balanced_accuracy"])[0, 1])
               if np.std(r["balanced_accuracy"]) > 0 and np.std(r["heldout_balanced_accuracy"]) > 0 else float("nan")
               for r in rankings]
        auc3 = [float(np.mean(r["heldout_auc_p_yes"][:3])) if "heldout_auc_p_yes" in r else float("nan")
                for r in rankings]
        return [label] + ["{:.3f} ± {:.3f}".format(*_stats(v)) for v in (top1, held1, held3, spread, rho, auc3)]

    mfa_cols = ["base MLLM vision tower", "top-1 bal. acc. (MFA set)", "top-1 bal. acc. (held-out)",
                "top-3 mean bal. acc. (held-out)", "max deviation of bal. acc. from 0.5 (held-out)",
                "corr(MFA set, held-out) over 24 questions", "top-3 mean AUC of P(yes) (held-out)"]
    mfa_rows = [mfa_row("random tiny CLIP ViT (before)", null_runs),
                mfa_row("frozen ImageNet EfficientNet-Lite0 (now)", mfa_runs)]
    top_rows = [[seed, " / ".join(r["questions"][:3]),
                 " / ".join(f"{a:.2f}" for a in r["balanced_accuracy"][:3]),
                 " / ".join(f"{a:.2f}" for a in r["heldout_balanced_accuracy"][:3]),
                 sf.get("model_agrees_fraction")]
                for seed, r, sf in zip(seeds, mfa_runs, sfs_runs)]
    return {
        "detection": {"columns": cols, "rows": rows},
        "paired": {"columns": diff_cols, "rows": diff_rows},
        "per_manipulation": per_man,
        "per_manipulation_paired": per_man_diff,
        "mfa": {"columns": mfa_cols, "rows": mfa_rows},
        "mfa_top": {"columns": ["seed", "MFA top-3 features", "bal. acc. (MFA set)", "bal. acc. (held-out)",
                                "SFS: fraction of images the base's own answers explain"],
                    "rows": top_rows, "floatfmt": ".3f"},
    }


def random_tower_mfa(seed: int, smoke: bool, overrides: list[str]) -> dict:
    """The MFA ranking of the same tiny LLaVA with a randomly initialised CLIP tower (the null: nothing learned)."""
    from shared.runs import apply_overrides, load_config_file
    from shared.runs.cli import _parse_pairs
    from x2dfd import mfa
    from x2dfd.config import Config
    from x2dfd.mllm import MLLM
    from x2dfd.pipeline import corpus, run_mfa
    from x2dfd.train import SMOKE, load_data

    cfg = apply_overrides(Config(), load_config_file(PROJECT / "configs" / "cpu.yaml"))
    cfg = apply_overrides(cfg, {**(SMOKE if smoke else {}), **_parse_pairs(overrides), "seed": seed,
                                "tiny.vision": "clip"})
    splits = load_data(cfg)
    bank = mfa.load_question_bank()
    mllm = MLLM.tiny(corpus(bank), cfg.tiny, seed=seed)
    return run_mfa(mllm, splits["train"], bank, cfg.mfa, np.random.default_rng(seed), splits["in_domain"])


def main(argv=None) -> dict:
    import torch

    from shared.runs import package_versions
    from x2dfd.train import main as train_main

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--out", type=Path, default=PROJECT / "runs" / "reproduce")
    ap.add_argument("--results", type=Path, default=PROJECT / "results" / "reproduce.json")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--retable", action="store_true",
                    help="only recompute the tables of an existing --results file from its raw per-seed data")
    ap.add_argument("overrides", nargs="*", metavar="key=value")
    args = ap.parse_args(argv)
    if args.retable:
        out = json.loads(args.results.read_text())
        tables = summarise(out["raw"], out["mfa"], out["mfa_random_tower"], out["sfs"], out["seeds"])
        out["tables"] = {**out["tables"], **tables}
        args.results.write_text(json.dumps(out, indent=1) + "\n")
        print(f"recomputed the tables of {args.results}")
        return out
    t0 = time.time()
    raw: dict[str, list[dict]] = {name: [] for name in VARIANTS}
    runs: dict[str, list[str]] = {name: [] for name in VARIANTS}
    torch.set_num_threads(args.threads)
    mfa_runs, null_runs, sfs_runs = [], [], []
    cpu = 0.0
    for seed in args.seeds:
        first = None
        for name, flags in VARIANTS.items():
            argv_run = [*(["--smoke"] if args.smoke else []), "--quiet", "--device", "cpu", "--seed", str(seed),
                        "--threads", str(args.threads), "--out", str(args.out), "n_explanations=0", *flags,
                        *args.overrides, *([f"reuse_from={first}"] if first else [])]
            if name == "+SFS+WFS":
                argv_run = [a for a in argv_run if a != "n_explanations=0"] if seed == args.seeds[-1] else argv_run
            res = train_main(argv_run)
            first = first or res["run"]
            raw[name].append(res["metrics"])
            runs[name].append(res["run"])
            cpu += res["cpu_time_s"]
            print(f"seed {seed} {name:>14}: " + "  ".join(f"{s} {res['metrics'][s]['frame_auc']:.3f}"
                                                          for s in SPLITS), flush=True)
        run = Path(first)
        mfa_runs.append(json.loads((run / "mfa.json").read_text()))
        sfs_runs.append(json.loads((run / "sfs.json").read_text()))
        null_runs.append(random_tower_mfa(seed, args.smoke, args.overrides))
    tables = summarise(raw, mfa_runs, null_runs, sfs_runs, args.seeds)
    examples = json.loads((Path(runs["+SFS+WFS"][-1]) / "examples.json").read_text())
    tables["explanations"] = {
        "columns": ["split", "manipulation", "label", "expert score", "P(fake)", "generated answer"],
        "rows": [[split, e["manipulation"], "fake" if e["label"] else "real", e["question"].split("? ", 1)[-1]
                  if "score" in e["question"] else "-", e["p_fake"], e["answer"]]
                 for split, exs in examples.items() for e in exs[:3]], "floatfmt": ".3f"}
    wall = time.time() - t0
    out = {
        "tables": tables,
        "seeds": args.seeds,
        "threads": args.threads,
        "versions": package_versions("x2dfd", "torch", "transformers", "peft", "numpy", "timm"),
        "wall_time_s": round(wall, 1),
        "cpu_time_s": round(cpu, 1),
        "command": " ".join(["uv run reproduce.py"] + (["--smoke"] if args.smoke else [])
                            + (["--seeds", *map(str, args.seeds)] if args.seeds != [0, 1, 2, 3, 4] else [])
                            + ([f"--threads {args.threads}"] if args.threads != 1 else []) + args.overrides),
        "raw": raw,
        "mfa": mfa_runs,
        "mfa_random_tower": null_runs,
        "sfs": sfs_runs,
        "runs": {k: [str(Path(r).relative_to(PROJECT)) if Path(r).is_relative_to(PROJECT) else r for r in v]
                 for k, v in runs.items()},
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(out, indent=1) + "\n")
    from shared.results import render_table

    for key in ("detection", "paired", "mfa"):
        print(render_table(tables[key]))
    print(f"wrote {args.results} in {wall:.0f} s wall ({cpu:.0f} s CPU in the training runs)")
    return out


if __name__ == "__main__":
    main()
