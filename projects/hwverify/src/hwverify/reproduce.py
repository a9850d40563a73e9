"""The CPU-scale comparison: does a VLM that sees the handwriting beat the siamese ResNet-18 under one budget?

    uv run reproduce.py                 # 3 seeds x 4 verifiers -> results/cpu_claim.json, results/roc.png
    uv run reproduce.py --smoke         # seconds, writes into --results (default: a temporary folder)

Every verifier trains on the pairs of the same synthetic training writers for the same number of epochs (the
ResNet sees every same-writer combination and as many different-writer pairs per epoch; each VLM the fixed
SSL-HV pair list of those writers, of the same size) and is tested on the same writer-disjoint test pairs:

* ``ResNet-18 siamese`` -- the paper's baseline (random init: no ResNet ImageNet weights offline);
* ``VLM, ImageNet Lite0 tower, full`` -- PaliGemma whose vision tower is the ImageNet EfficientNet-Lite0
  (real weights, frozen, as PaliGemma's fine-tuning and SSL-HV freeze their image encoders); projector and
  the tiny Gemma train in full;
* ``VLM, random SigLIP, full`` -- the tiny PaliGemma, every parameter trained;
* ``VLM, random SigLIP, LoRA`` -- the same model with LoRA adapters only (the paper's tuning).

Each VLM is scored by its yes/no logit (AUC, EER, thresholded accuracy) and by its generated answer, parsed with
the official parser under both accountings of "Unknown". The zero-shot chain-of-thought protocol runs only when
an OpenAI-compatible endpoint is configured (HWVERIFY_CHAT_BASE_URL, HWVERIFY_CHAT_MODEL, OPENAI_API_KEY), with
``--cot-transport`` official (base64 text, as published) or image_url (image parts).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PROJECT = Path(__file__).resolve().parents[2]
# name -> (overrides); the data and epoch budget below are shared by all.
VERIFIERS = {
    "ResNet-18 siamese": ["model=resnet"],
    "VLM, ImageNet Lite0 tower, full": ["model=vlm"],
    "VLM, random SigLIP, full": ["model=vlm", "vlm.vision_tower=siglip", "vlm.freeze_vision=false", "vlm.lr=0.001"],
    "VLM, random SigLIP, LoRA": ["model=vlm", "vlm.vision_tower=siglip", "vlm.tuning=lora", "vlm.lr=0.003"],
    "VLM, ImageNet Lite0 tower, full, answer only": ["model=vlm", "vlm.explain=false"],
}
DEFAULT_VERIFIERS = list(VERIFIERS)[:4]
"""The default comparison; the answer-only variant (no explanation in the target) is run with --verifiers."""
"""The budget (48 writers, 4 epochs each, VLM input 64 x 64) is configs/cpu.yaml; these change the model only."""


def mean_sd(values: list[float]) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "—"
    return f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f}" if len(values) > 1 else f"{values[0]:.3f}"


def save_writer_grid(path: Path, seed: int) -> None:
    """Four synthetic writers x four samples (their original 128 px scans), the README's figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from shared.data.handwriting import handwriting_and

    hw = handwriting_and(4, 4, size=128, seed=seed)
    fig, axes = plt.subplots(4, 4, figsize=(5, 5))
    for k, ax in enumerate(axes.ravel()):
        ax.imshow(hw.images[k], cmap="gray", vmin=0, vmax=1)
        ax.set_title(hw.names[k], fontsize=7)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def run_cot(run: str, transport: str, n_pairs: int) -> dict:
    """The two-turn protocol on head/tail test pairs (the scripts' 50 + 50) of a run's data, if configured."""
    from hwverify.config import Config
    from hwverify.cot import ChatClient, run_protocol
    from hwverify.data import load_data, make_pairs
    from hwverify.metrics import decision_metrics
    from shared.runs import RunDir

    client = ChatClient.from_env()
    if client is None:
        return {"status": "not run: no OpenAI-compatible endpoint configured (HWVERIFY_CHAT_BASE_URL)"}
    cfg = RunDir.open(run).read_config(Config)
    data = load_data(cfg.data, cfg.data_root, cfg.seed)
    pairs = make_pairs(data.writer_ids, data.splits["test"], np.random.default_rng(cfg.seed + 12))
    chosen = np.concatenate([pairs[:n_pairs // 2], pairs[-(n_pairs // 2):]])  # positives first, then negatives
    sources = data.paths if data.paths is not None else data.originals
    answers = run_protocol(client, sources, chosen, transport=transport)
    decisions = [a["decision"] for a in answers]
    return {"status": f"run with model {client.model} at {client.url}, transport {transport}", "answers": answers,
            **{acc: decision_metrics(chosen[:, 2], decisions, acc) for acc in ("drop", "wrong")}}


def main(argv: list[str] | None = None) -> dict:
    from hwverify import eval as evaluate
    from hwverify import train
    from hwverify.evaluate import save_roc
    from shared.runs import package_versions

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (tests)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of every run (default 1)")
    parser.add_argument("--results", type=Path, default=None, help="default: results/ (a temp folder with --smoke)")
    parser.add_argument("--runs", type=Path, default=None, help="parent of the run folders (default: runs/)")
    parser.add_argument("--cot-pairs", type=int, default=100, help="pairs for the zero-shot protocol (50 + 50)")
    parser.add_argument("--cot-transport", choices=["official", "image_url"], default="official")
    parser.add_argument("--answer-pairs", type=int, default=200, help="VLM test pairs whose answers are generated")
    parser.add_argument("--verifiers", nargs="+", choices=list(VERIFIERS), default=DEFAULT_VERIFIERS,
                        help="a subset of the verifiers (default: all)")
    parser.add_argument("--set", nargs="+", default=[], metavar="key=value",
                        help="config overrides for every run (e.g. vlm.epochs=12), recorded in the JSON")
    parser.add_argument("--name", default="cpu_claim", help="results/<name>.json (default: cpu_claim)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    results = args.results or (Path(tempfile.mkdtemp()) if args.smoke else PROJECT / "results")
    runs = args.runs or (results / "runs" if args.smoke else PROJECT / "runs")
    results.mkdir(parents=True, exist_ok=True)
    start = time.time()
    common = ["--out", str(runs), "--device", "cpu", "--quiet", "--threads", str(args.threads),
              *(["--smoke"] if args.smoke else [])]

    per_run: dict[str, list[dict]] = {name: [] for name in args.verifiers}
    for seed in args.seeds:
        for name in args.verifiers:
            t0 = time.time()
            trained = train.main([*common, "--seed", str(seed), *VERIFIERS[name], *args.set])
            ev = evaluate.main([trained["run"], "--device", "cpu", "--threads", str(args.threads), "--quiet",
                                "--answer-pairs", str(6 if args.smoke else args.answer_pairs),
                                *(["--no-figures"] if args.smoke else [])])
            per_run[name].append({"seed": seed, "run": str(Path(trained["run"]).relative_to(runs.parent))
                                  if Path(trained["run"]).is_relative_to(runs.parent) else trained["run"],
                                  "train": trained, "eval": ev, "wall_s": time.time() - t0})
            t = ev["test"]
            print(f"seed {seed}  {name}: accuracy {t['accuracy']:.3f}  AUC {t['auc']:.3f}  EER {t['eer']:.3f}  "
                  f"[{time.time() - t0:.0f} s]", flush=True)

    # ---- tables ----
    summary_rows, seed_rows, decision_rows, time_rows = [], [], [], []
    for name, items in per_run.items():
        tests = [it["eval"]["test"] for it in items]
        summary_rows.append([name, len(items), mean_sd([t["accuracy"] for t in tests]),
                             mean_sd([t["f1"] for t in tests]), mean_sd([t["auc"] for t in tests]),
                             mean_sd([t["eer"] for t in tests])])
        for it, t in zip(items, tests):
            low, high = t["accuracy_ci95"]
            seed_rows.append([name, it["seed"], t["n"], f"{t['accuracy']:.3f} [{low:.3f}, {high:.3f}]", t["precision"],
                              t["recall"], t["f1"], t["auc"], t["eer"]])
        if "decisions" in items[0]["eval"]:
            for acc, text in (("drop", "Unknown dropped"), ("wrong", "Unknown = wrong")):
                d = [it["eval"]["decisions"][acc] for it in items]
                decision_rows.append([name, text, sum(x["n"] for x in d), sum(x["n_unknown"] for x in d),
                                      mean_sd([x.get("accuracy") for x in d])])
        time_rows.append([name, float(np.mean([it["train"]["train_s"] for it in items])),
                          float(np.mean([it["train"]["epochs"] for it in items]))])

    cot = run_cot(next(iter(per_run.values()))[0]["train"]["run"], args.cot_transport, args.cot_pairs)
    if "drop" in cot:
        for acc, text in (("drop", "Unknown dropped"), ("wrong", "Unknown = wrong")):
            decision_rows.append([f"zero-shot CoT ({args.cot_transport})", text, cot[acc]["n"], cot[acc]["n_unknown"],
                                  mean_sd([cot[acc].get("accuracy")])])
    else:
        decision_rows.append(["zero-shot CoT (GPT-4o protocol)", "not run (no endpoint)", None, None, "—"])

    first_vlm = next((items[0]["eval"] for items in per_run.values() if "examples" in items[0]["eval"]), None)
    examples = [[e["known"], e["questioned"], e["label"], e["decision"], e["explanation"] or "—"]
                for e in (first_vlm or {}).get("examples", [])]
    if not args.smoke:
        save_roc(results / ("roc.png" if args.name == "cpu_claim" else f"roc_{args.name}.png"),
                 {name: [(it["eval"]["labels"], it["eval"]["scores"]) for it in items]
                  for name, items in per_run.items()},
                 stats={name: (float(np.mean([it["eval"]["test"]["auc"] for it in items])),
                               float(np.mean([it["eval"]["test"]["eer"] for it in items])))
                        for name, items in per_run.items()})
        if args.name == "cpu_claim":
            save_writer_grid(results / "writers.png", 0)
    out = {
        "tables": {
            "main": {"columns": ["verifier", "seeds", "accuracy", "F1", "AUC", "EER"], "rows": summary_rows},
            "seeds": {"columns": ["verifier", "seed", "n pairs", "accuracy [95 % CI]", "precision", "recall", "F1",
                                  "AUC", "EER"], "rows": seed_rows, "floatfmt": ".3f"},
            "decisions": {"columns": ["verifier", "generated answers", "n answers", "n Unknown", "accuracy"],
                          "rows": decision_rows},
            "explanations": {"columns": ["known", "questioned", "truth", "VLM decision", "VLM explanation"],
                             "rows": examples},
            "time": {"columns": ["verifier", "train wall time per seed (s)", "epochs"], "rows": time_rows,
                     "floatfmt": ".0f"},
        },
        "seeds": args.seeds,
        "threads": args.threads,
        "budget": "configs/cpu.yaml" + (" + --smoke" if args.smoke else ""),
        "verifiers": {name: VERIFIERS[name] + args.set for name in args.verifiers},
        "versions": package_versions("hwverify", "torch", "transformers", "peft", "torchvision", "timm"),
        "wall_time_s": time.time() - start,
        "command": "uv run reproduce.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "config": "configs/cpu.yaml" + (" + --smoke" if args.smoke else ""),
        "accuracy_ci": "95 % percentile bootstrap over test writers (2,000 replicates); ± is the SD over seeds",
        "runs": {name: [{"seed": it["seed"], "run": it["run"], "test": it["eval"]["test"],
                         "decisions": it["eval"].get("decisions"), "epochs": it["train"]["epochs"],
                         "train_s": it["train"]["train_s"]} for it in items] for name, items in per_run.items()},
        "zero_shot_cot": cot,
        "sslhv_swapped_note": "precision_sslhv / recall_sslhv in runs.*.test are the values SSL-HV's "
                              "precision_score(preds, labels) argument order would print",
    }
    path = results / f"{args.name}.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path} ({out['wall_time_s']:.0f} s)")
    for r in summary_rows:
        print("  ", r)
    return out
