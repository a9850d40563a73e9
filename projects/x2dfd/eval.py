"""Evaluate a trained X²-DFD run: frame/video AUC of P(fake) per test split, explanations, a figure.

    uv run eval.py --run runs/<date>-<time>-x2dfd            # writes eval.json, explanations.json, eval.png
    uv run eval.py --run runs/... n_explanations=12 explanation_tokens=64
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from shared.runs import RunDir, seed_everything, select_device
from shared.runs.cli import apply_overrides, build_parser, _parse_pairs
from x2dfd import mfa
from x2dfd.config import Config
from x2dfd.pipeline import build_mllm, evaluate
from x2dfd.wfs import build_expert


def plot(results: dict, splits: dict, path: Path) -> None:
    """P(fake) histograms (real vs fake) per test split, and the first example frames with their answers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3), squeeze=False)
    for ax, name in zip(axes[0], names):
        p = np.array(results[name]["p_fake"])
        y = splits[name].labels
        bins = np.linspace(0, 1, 21)
        ax.hist(p[y == 0], bins, alpha=0.6, label="real")
        ax.hist(p[y == 1], bins, alpha=0.6, label="fake")
        m = results[name]["metrics"]
        ax.set_title(f"{name}\nframe AUC {m['frame_auc']:.3f}, video AUC {m['video_auc']:.3f}", fontsize=9)
        ax.set_xlabel("P(fake)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> dict:
    parser = build_parser(Config, "Evaluate an X²-DFD run folder")
    parser.add_argument("--run", type=Path, required=True, help="run folder written by train.py")
    args = parser.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
    run = RunDir.open(args.run)
    cfg = apply_overrides(run.read_config(Config), _parse_pairs(args.overrides))
    if args.data_root is not None:
        cfg = apply_overrides(cfg, {"data_root": args.data_root})
    device = select_device(args.device)
    seed_everything(cfg.seed)

    from train import load_data  # the same splits as training (deterministic in the seed)

    splits = load_data(cfg)
    bank = mfa.load_question_bank()
    mllm = build_mllm(cfg, bank)
    mllm.add_lora(cfg.lora.r, cfg.lora.alpha, cfg.lora.dropout)
    run.load_checkpoint("last", {"mllm": mllm.model}, restore_rng=False)
    mllm.model.to(device)
    expert = None
    if cfg.use_wfs:
        expert = build_expert(cfg.expert.arch).to(device)
        run.load_checkpoint("expert", {"expert": expert}, restore_rng=False)
    results = evaluate(mllm, expert, splits, cfg, device, cfg.n_explanations)
    metrics = {k: r["metrics"] for k, r in results.items()}
    run.write_json("eval.json", {"metrics": metrics, "examples": {k: r["examples"] for k, r in results.items()}})
    run.write_json("explanations.json", [dict(split=k, **e) for k, r in results.items() for e in r["examples"]])
    plot(results, splits, run.path / "eval.png")
    for name, m in metrics.items():
        print(f"{name:>14}: frame AUC {m['frame_auc']:.3f}  video AUC {m['video_auc']:.3f}")
    print(f"wrote {run.path / 'eval.json'}, explanations.json, eval.png")
    return metrics


if __name__ == "__main__":
    main()
