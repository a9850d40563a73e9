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


def save_roc(path: Path, curves: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """ROC curves ``{name: (labels, scores)}`` with the EER diagonal, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    fig, ax = plt.subplots(figsize=(4, 4))
    for name, (labels, scores) in curves.items():
        fpr, tpr, _ = roc_curve(labels, scores)
        ax.plot(fpr, tpr, label=name)
    ax.plot([0, 1], [1, 0], "k:", lw=0.8, label="FPR = FNR")
    ax.set(xlabel="false accept rate", ylabel="true accept rate", title="Writer verification ROC")
    ax.legend(loc="lower right", fontsize=8)
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


def evaluate_run(run_path: str | Path, device: torch.device, *, max_pairs: int | None = None,
                 n_examples: int = 8, answer_pairs: int | None = 400, figures: bool = True) -> dict:
    """Evaluate a finished run folder on its writer-disjoint test pairs.

    ResNet: the ``best`` checkpoint. VLM: the saved adapters; besides the yes/no score it generates answers
    for up to ``answer_pairs`` test pairs, parses them with the official parser and reports both accountings
    of "Unknown", with example explanations. Writes ``eval.json`` (and ``roc.png`` / ``pairs.png``).
    """
    from hwverify.config import Config
    from hwverify.data import load_data, make_pairs, model_input
    from hwverify.metrics import decision_metrics, verification_metrics
    from shared.runs import RunDir

    run = RunDir.open(run_path)
    cfg = run.read_config(Config)
    data = load_data(cfg.data, cfg.data_root, cfg.seed)
    pairs = make_pairs(data.writer_ids, data.splits["test"], np.random.default_rng(cfg.seed + 12))
    if max_pairs is not None and max_pairs < len(pairs):  # an even spread over positives and negatives
        pairs = pairs[np.linspace(0, len(pairs) - 1, max_pairs).round().astype(int)]
    out: dict = {"model": cfg.model, "split": "test", "n_pairs": int(len(pairs))}
    if cfg.model == "resnet":
        model = SiameseResNet18(cfg.resnet.embedding_dim, cfg.resnet.hidden_dim, None, False).to(device)
        run.load_checkpoint("best", {"model": model}, restore_rng=False)
        scores = resnet_pair_scores(model, torch.from_numpy(model_input(data.images)), pairs, device)
    else:
        from hwverify.vlm import load_verifier

        verifier = load_verifier(run.path / "vlm", cfg.vlm, device)
        scores = verifier.scores(data.originals, pairs)
        chosen = pairs if answer_pairs is None or answer_pairs >= len(pairs) else \
            pairs[np.linspace(0, len(pairs) - 1, answer_pairs).round().astype(int)]
        answers = verifier.answer(data.originals, chosen)
        decisions = [a["decision"] for a in answers]
        out["decisions"] = {acc: decision_metrics(chosen[:, 2], decisions, acc) for acc in ("drop", "wrong")}
        pick = np.linspace(0, len(chosen) - 1, n_examples).round().astype(int)
        out["examples"] = [{"known": data.names[chosen[k, 0]], "questioned": data.names[chosen[k, 1]],
                            "label": "same" if chosen[k, 2] else "different", **answers[k]} for k in pick]
    out["test"] = verification_metrics(pairs[:, 2], (scores > 0.5).astype(int), scores)
    out["scores"] = np.round(scores, 5).tolist()
    out["labels"] = pairs[:, 2].tolist()
    if figures:
        save_roc(run.path / "roc.png", {cfg.model: (pairs[:, 2], scores)})
        pick = np.r_[np.flatnonzero(pairs[:, 2] == 1)[:4], np.flatnonzero(pairs[:, 2] == 0)[:4]]
        save_pair_grid(run.path / "pairs.png", data.images, pairs[pick], scores[pick])
    run.write_json("eval.json", out)
    return out
