"""Evaluate a trained X²-DFD run: frame/video AUC of P(fake) per test split, explanations, a figure.

    uv run eval.py runs/<date>-<time>-x2dfd      # merges eval.json["eval"]; writes explanations.json, eval.png
    uv run eval.py runs/... --explanations 12    # more generated explanations per split

Everything is written inside the run folder.
"""

from __future__ import annotations

from pathlib import Path

from shared.runs import build_eval_parser, entrypoint, open_run
from x2dfd.config import Config


def plot(results: dict, splits: dict, path: Path) -> None:
    """P(fake) histograms (real vs fake) per test split."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

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


@entrypoint
def main(argv=None) -> dict:
    parser = build_eval_parser("Evaluate an X²-DFD run folder (writes only inside it)")
    parser.add_argument("--explanations", type=int, default=None, metavar="N",
                        help="generated explanations per test split (default: the run's n_explanations)")
    ev = open_run(Config, argv, parser=parser)
    cfg = ev.cfg

    from x2dfd import mfa
    from x2dfd.pipeline import build_mllm, evaluate
    from x2dfd.train import load_data
    from x2dfd.wfs import build_expert

    splits = load_data(cfg)  # the same splits as training (deterministic in the seed)
    mllm = build_mllm(cfg, mfa.load_question_bank())
    mllm.add_lora(cfg.lora.r, cfg.lora.alpha, cfg.lora.dropout)
    ev.load({"mllm": mllm.model})
    mllm.model.to(ev.device)
    expert = None
    if cfg.use_wfs:
        expert = build_expert(cfg.expert.arch).to(ev.device)
        ev.run.load_checkpoint("expert", {"expert": expert}, restore_rng=False)
    n = cfg.n_explanations if ev.args.explanations is None else ev.args.explanations
    results = evaluate(mllm, expert, splits, cfg, ev.device, n, quiet=ev.args.quiet)
    metrics = {k: r["metrics"] for k, r in results.items()}
    ev.run.write_json("explanations.json", [dict(split=k, **e) for k, r in results.items() for e in r["examples"]])
    plot(results, splits, ev.run.path / "eval.png")
    ev.save({"metrics": metrics})
    for name, m in metrics.items():
        ev.log(f"{name:>14}: frame AUC {m['frame_auc']:.3f}  video AUC {m['video_auc']:.3f}")
    ev.log(f"wrote {ev.run.path / 'eval.json'} (section eval), explanations.json, eval.png")
    return metrics


if __name__ == "__main__":
    main()
