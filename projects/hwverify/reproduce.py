"""The CPU-scale claim of VLM-HV: the siamese ResNet-18 beats the fine-tuned VLM, while the VLM explains.

    uv run reproduce.py                 # configs/cpu.yaml, seed 0 -> results/cpu_claim.json (+ roc.png, writers.png)
    uv run reproduce.py --smoke         # seconds, writes into --results (default: a temporary folder)

Both verifiers train on the same synthetic writers and are tested on the same writer-disjoint pairs
(train.py, one run each). The VLM is scored twice: by its yes/no logit (AUC, EER, thresholded accuracy)
and by its generated answer parsed with the official parser, under both accountings of "Unknown". The
zero-shot chain-of-thought protocol runs only when an OpenAI-compatible endpoint is configured
(HWVERIFY_CHAT_BASE_URL, HWVERIFY_CHAT_MODEL, OPENAI_API_KEY); otherwise it is reported as not run.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import train
from hwverify.cot import ChatClient, run_protocol
from hwverify.evaluate import evaluate_run, save_roc
from hwverify.metrics import decision_metrics
from shared.runs import package_versions, select_device

HERE = Path(__file__).resolve().parent
COLUMNS = ["method", "decision", "n pairs", "accuracy", "precision", "recall", "F1", "AUC", "EER"]


def row(method: str, decision: str, m: dict) -> list:
    return [method, decision, m.get("n"), m.get("accuracy"), m.get("precision"), m.get("recall"), m.get("f1"),
            m.get("auc"), m.get("eer")]


def save_writer_grid(path: Path, seed: int) -> None:
    """Four synthetic writers x four samples, the figure of the README."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from shared.data.handwriting import handwriting_and

    hw = handwriting_and(4, 4, seed=seed)
    fig, axes = plt.subplots(4, 4, figsize=(5, 5))
    for k, ax in enumerate(axes.ravel()):
        ax.imshow(hw.images[k], cmap="gray", vmin=0, vmax=1)
        ax.set_title(hw.names[k], fontsize=7)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (tests)")
    parser.add_argument("--results", type=Path, default=None, help="default: results/ (a temp folder with --smoke)")
    parser.add_argument("--runs", type=Path, default=None, help="parent of the two run folders (default: runs/)")
    parser.add_argument("--cot-pairs", type=int, default=100, help="pairs for the zero-shot protocol (50 + 50)")
    parser.add_argument("--reuse", nargs=2, type=Path, metavar=("RESNET_RUN", "VLM_RUN"), default=None,
                        help="evaluate two finished train.py runs instead of training them again")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    results = args.results or (Path(tempfile.mkdtemp()) if args.smoke else HERE / "results")
    runs = args.runs or (results / "runs" if args.smoke else HERE / "runs")
    results.mkdir(parents=True, exist_ok=True)
    start = time.time()
    common = ["--out", str(runs), "--seed", str(args.seed), "--device", "cpu", "--quiet", *(["--smoke"] if args.smoke else [])]

    if args.reuse is None:
        resnet = train.main(["--model", "resnet", *common])
        vlm = train.main(["--model", "vlm", *common])
    else:
        resnet, vlm = ({**json.loads((run / "eval.json").read_text()), "run": str(run)} for run in args.reuse)
    device = select_device("cpu")
    ev_resnet = evaluate_run(resnet["run"], device, figures=not args.smoke)
    ev_vlm = evaluate_run(vlm["run"], device, figures=not args.smoke, answer_pairs=None if args.smoke else 400)

    rows = [row("ResNet-18 siamese", "p(same) > 0.5", ev_resnet["test"]),
            row("PaliGemma (tiny) + LoRA", "p(yes) > 0.5", ev_vlm["test"])]
    for accounting, text in (("drop", "generated, Unknown dropped"), ("wrong", "generated, Unknown = wrong")):
        rows.append(row("PaliGemma (tiny) + LoRA", text, ev_vlm["decisions"][accounting]))

    cot: dict = {"status": "not run: no OpenAI-compatible endpoint configured (HWVERIFY_CHAT_BASE_URL)"}
    client = ChatClient.from_env()
    if client is not None:
        from hwverify.config import Config
        from hwverify.data import load_data, make_pairs
        from shared.runs import RunDir

        cfg = RunDir.open(resnet["run"]).read_config(Config)
        data = load_data(cfg.data, cfg.data_root, cfg.seed)
        pairs = make_pairs(data.writer_ids, data.splits["test"], np.random.default_rng(cfg.seed + 12))
        half = args.cot_pairs // 2  # the official scripts take head(50) + tail(50): positives then negatives
        chosen = np.concatenate([pairs[:half], pairs[-half:]])
        answers = run_protocol(client, data.images, chosen)
        decisions = [a["decision"] for a in answers]
        cot = {"status": f"run with model {client.model} at {client.url}", "answers": answers,
               **{acc: decision_metrics(chosen[:, 2], decisions, acc) for acc in ("drop", "wrong")}}
        rows += [row(f"{client.model} zero-shot CoT", "Unknown dropped", cot["drop"]),
                 row(f"{client.model} zero-shot CoT", "Unknown = wrong", cot["wrong"])]
    else:
        rows.append(["zero-shot CoT (GPT-4o protocol)", "not run (no endpoint)", None, None, None, None, None, None,
                     None])

    examples = [[e["known"], e["questioned"], e["label"], e["decision"], e["explanation"] or "—"]
                for e in ev_vlm["examples"]]
    if not args.smoke:
        save_roc(results / "roc.png", {"ResNet-18 siamese": (ev_resnet["labels"], ev_resnet["scores"]),
                                       "PaliGemma (tiny) + LoRA": (ev_vlm["labels"], ev_vlm["scores"])})
        save_writer_grid(results / "writers.png", args.seed)
    out = {
        "tables": {
            "main": {"columns": COLUMNS, "rows": rows, "floatfmt": ".3f"},
            "explanations": {"columns": ["known", "questioned", "truth", "VLM decision", "VLM explanation"],
                             "rows": examples},
            "time": {"columns": ["run", "epochs", "wall time (s)"], "floatfmt": ".0f",
                     "rows": [["ResNet-18 siamese", resnet["epochs"], resnet["train_s"]],
                              ["PaliGemma (tiny) + LoRA", vlm["epochs"], vlm["train_s"]]]},
        },
        "seeds": [args.seed],
        "versions": package_versions("hwverify", "transformers", "peft", "torchvision", "opencv-python"),
        # With --reuse the two training runs were made by train.py beforehand: count their time too.
        "wall_time_s": time.time() - start + (resnet["train_s"] + vlm["train_s"] if args.reuse else 0.0),
        "command": ("uv run reproduce.py" + (" --smoke" if args.smoke else "")) if args.reuse is None else
                   "uv run train.py --model resnet --device cpu; uv run train.py --model vlm --device cpu; "
                   "uv run reproduce.py --reuse runs/<resnet run> runs/<vlm run>",
        "config": "configs/cpu.yaml" + (" + --smoke" if args.smoke else ""),
        "resnet": {k: ev_resnet[k] for k in ("test", "n_pairs")} | {"best_epoch": resnet["best_epoch"]},
        "vlm": {k: ev_vlm[k] for k in ("test", "n_pairs", "decisions", "examples")},
        "zero_shot_cot": cot,
        "sslhv_swapped_note": "precision_sslhv / recall_sslhv in 'resnet.test' and 'vlm.test' are the values "
                              "SSL-HV's precision_score(preds, labels) argument order would print",
    }
    path = results / "cpu_claim.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path} ({out['wall_time_s']:.0f} s)")
    for r in rows:
        print("  ", r)
    return out


if __name__ == "__main__":
    main()
