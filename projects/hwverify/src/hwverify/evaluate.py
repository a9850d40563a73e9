"""Scoring pairs with the siamese verifier, and the figures eval.py writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from hwverify.model import SiameseResNet18, same_writer_score


@torch.no_grad()
def resnet_pair_scores(model: SiameseResNet18, images: torch.Tensor, pairs: np.ndarray, device: torch.device,
                       batch_size: int = 256) -> np.ndarray:
    """Same-writer probabilities of ``pairs`` (rows i, j, ...): each image is embedded once, in eval mode."""
    model.eval()
    used = np.unique(pairs[:, :2])
    position = np.full(len(images), -1, np.int64)
    position[used] = np.arange(len(used))
    emb = torch.cat([model.embedding(images[used[k:k + batch_size]].to(device))
                     for k in range(0, len(used), batch_size)])
    a = torch.as_tensor(position[pairs[:, 0]], device=device)
    b = torch.as_tensor(position[pairs[:, 1]], device=device)
    return same_writer_score(model.pair_logits(emb[a], emb[b])).cpu().numpy()


def save_roc(path: Path, curves: dict, stats: dict[str, tuple[float, float]] | None = None) -> None:
    """ROC curves ``{name: (labels, scores)}`` with AUC and EER in the legend and the EER diagonal, as a PNG.
    A name may carry several seeds' curves: ``{name: [(labels, scores), ...]}`` (drawn thin, AUC/EER as means).
    ``stats`` = ``{name: (AUC, EER)}`` puts those figures (e.g. the results table's) in the legend instead of
    recomputing them from the curves' scores."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    from shared.metrics import equal_error_rate, roc_auc

    fig, ax = plt.subplots(figsize=(5, 5))
    for k, (name, runs) in enumerate(curves.items()):
        runs = [runs] if isinstance(runs, tuple) else list(runs)
        aucs = [roc_auc(np.asarray(y), np.asarray(p)) for y, p in runs]
        eers = [equal_error_rate(np.asarray(y), np.asarray(p))[0] for y, p in runs]
        if stats is not None and name in stats:
            aucs, eers = [stats[name][0]], [stats[name][1]]
        for r, (labels, scores) in enumerate(runs):
            fpr, tpr, _ = roc_curve(labels, scores)
            seeds = f", mean of {len(runs)} seeds" if len(runs) > 1 else ""
            ax.plot(fpr, tpr, color=f"C{k}", lw=1.5 if len(runs) == 1 else 1.0, alpha=1.0 if len(runs) == 1 else 0.7,
                    label=f"{name} (AUC {np.mean(aucs):.3f}, EER {np.mean(eers):.3f}{seeds})" if r == 0 else None)
    ax.plot([0, 1], [1, 0], "k:", lw=0.8, label="FPR = FNR (EER points)")
    ax.set(xlabel="false accept rate", ylabel="true accept rate", title="Writer verification ROC")
    ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def save_pair_grid(path: Path, images: np.ndarray, pairs: np.ndarray, scores: np.ndarray, n: int = 8) -> None:
    """Known / Questioned pairs with the label and the verifier's same-writer score, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = min(n, len(pairs))
    fig, axes = plt.subplots(2, n, figsize=(1.3 * n, 3))
    axes = np.asarray(axes).reshape(2, n)
    for k in range(n):
        i, j, label = pairs[k][:3]
        for r, idx in enumerate((i, j)):
            axes[r, k].imshow(images[idx], cmap="gray", vmin=0, vmax=1)
            axes[r, k].axis("off")
        axes[0, k].set_title(f"{'same' if label else 'diff'}\np={scores[k]:.2f}", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def evaluate_run(ev, *, max_pairs: int | None = None, n_examples: int = 8, answer_pairs: int | None = 400,
                 figures: bool = True) -> dict:
    """Evaluate an opened run (``shared.runs.open_run``) on its writer-disjoint test pairs.

    ResNet: the evaluated checkpoint set (``final`` = early-stopped on validation F1). VLM: the tiny base saved by
    the run (or the configured checkpoint) tuned with the set's parameters; besides the yes/no score it generates
    answers for up to ``answer_pairs`` test pairs, parses them with the official parser and reports both
    accountings of "Unknown", with example explanations. Accuracy carries a 95 % confidence interval from a
    bootstrap over test writers. Figures (``roc.png``, ``pairs.png``) go into the run folder.
    """
    from hwverify.data import load_data, make_pairs, model_input
    from hwverify.metrics import accuracy_ci, decision_metrics, verification_metrics

    cfg, run, device, quiet = ev.cfg, ev.run, ev.device, ev.args.quiet
    data = load_data(cfg.data, cfg.data_root, cfg.seed)
    pairs = make_pairs(data.writer_ids, data.splits["test"], np.random.default_rng(cfg.seed + 12))
    if max_pairs is not None and max_pairs < len(pairs):  # an even spread over positives and negatives
        pairs = pairs[np.linspace(0, len(pairs) - 1, max_pairs).round().astype(int)]
    out: dict = {"model": cfg.model, "split": "test", "n_pairs": int(len(pairs))}
    if cfg.model == "resnet":
        model = SiameseResNet18(cfg.resnet.embedding_dim, cfg.resnet.hidden_dim, None, False).to(device)
        ev.load({"model": model})
        scores = resnet_pair_scores(model, torch.from_numpy(model_input(data.images)), pairs, device)
    else:
        from hwverify.vlm import ModelState, TrainableState, VLMVerifier, load_base, prepare_tuning
        from shared.runs import load_modules

        base, processor = load_base(cfg.vlm)
        if cfg.vlm.pretrained is None:
            load_modules(run.checkpoint_info("base").path, {"base": ModelState(base)})
        model = prepare_tuning(base, cfg.vlm)
        ev.load({"trainable": TrainableState(model)})
        verifier = VLMVerifier(model, processor, cfg.vlm, device)
        scores = verifier.scores(data.originals, pairs, quiet=quiet)
        chosen = pairs if answer_pairs is None or answer_pairs >= len(pairs) else \
            pairs[np.linspace(0, len(pairs) - 1, answer_pairs).round().astype(int)]
        answers = verifier.answer(data.originals, chosen, quiet=quiet)
        decisions = [a["decision"] for a in answers]
        out["decisions"] = {acc: decision_metrics(chosen[:, 2], decisions, acc) for acc in ("drop", "wrong")}
        pick = np.linspace(0, len(chosen) - 1, n_examples).round().astype(int)
        out["examples"] = [{"known": data.names[chosen[k, 0]], "questioned": data.names[chosen[k, 1]],
                            "label": "same" if chosen[k, 2] else "different", **answers[k]} for k in pick]
    preds = (scores > 0.5).astype(int)
    out["test"] = verification_metrics(pairs[:, 2], preds, scores)
    out["test"]["accuracy_ci95"] = accuracy_ci(pairs[:, 2], preds, data.writer_ids[pairs[:, 0]], seed=cfg.seed)
    out["scores"] = scores.astype(float).tolist()
    out["labels"] = pairs[:, 2].tolist()
    if figures:
        save_roc(run.path / "roc.png", {cfg.model: (pairs[:, 2], scores)})
        pick = np.r_[np.flatnonzero(pairs[:, 2] == 1)[:4], np.flatnonzero(pairs[:, 2] == 0)[:4]]
        save_pair_grid(run.path / "pairs.png", data.images, pairs[pick], scores[pick])
    return out
