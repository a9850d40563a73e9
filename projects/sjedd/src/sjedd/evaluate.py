"""Evaluation: frame- and video-level AUC (video score = mean of frame fake probabilities, official
``SJEDD_test.py``), per-manipulation AUC, and the per-node semantic predictions that serve as the explanation."""

from __future__ import annotations

import numpy as np
import torch

from shared.metrics import roc_auc
from shared.runs import progress
from sjedd.data import FaceSet
from sjedd.graph import marginals
from sjedd.labels import NODE_NAMES


@torch.no_grad()
def predict(model: torch.nn.Module, data: FaceSet, method: str, device: torch.device, batch_size: int = 64,
            quiet: bool = True, desc: str | None = None) -> np.ndarray:
    """(N, 10) node marginals for the joint-embedding methods; (N, 1) fake probability for the binary baseline.
    Column 0 is always P(fake) (the marginal of node 0). A progress bar unless ``quiet`` (or not a terminal)."""
    model.eval()
    out = []
    for start in progress(range(0, len(data), batch_size), desc=desc, quiet=quiet):
        logits = model(data.images[start:start + batch_size].to(device))
        out.append(torch.sigmoid(logits)[:, None] if method == "binary" else marginals(logits))
    return torch.cat(out).double().cpu().numpy()


def video_scores(frame_scores: np.ndarray, videos: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean frame score and the label of each video (videos in order of first appearance)."""
    ids, first, inverse = np.unique(videos, return_index=True, return_inverse=True)
    sums = np.bincount(inverse, weights=frame_scores)
    counts = np.bincount(inverse)
    return sums / counts, labels[first]


def split_metrics(probs: np.ndarray, data: FaceSet) -> dict:
    """Frame AUC, video AUC, AUC of each manipulation class against the reals, and node accuracy of the fakes."""
    fake = data.is_fake
    scores = probs[:, 0]
    v_scores, v_labels = video_scores(scores, data.videos, fake)
    out = {"frame_auc": roc_auc(fake, scores), "video_auc": roc_auc(v_labels, v_scores), "n_frames": len(data)}
    classes = np.array(data.classes)
    per_class = {}
    for name in sorted(set(data.classes) - {"real"}):
        sel = (classes == name) | (classes == "real")
        if (classes == "real").any():
            per_class[name] = roc_auc(fake[sel], scores[sel])
    out["class_auc"] = per_class
    if probs.shape[1] == 10 and fake.any():
        labels = data.labels.numpy()
        hit = (probs[fake == 1] > 0.5) == (labels[fake == 1] > 0.5)
        out["node_accuracy_fakes"] = dict(zip(NODE_NAMES, hit.mean(0).round(4).tolist()))
        out["semantic_exact_match_fakes"] = float(hit[:, 1:].all(1).mean())
    return out


def evaluate_splits(model: torch.nn.Module, tests: dict[str, FaceSet], method: str, device: torch.device,
                    batch_size: int = 64, quiet: bool = True) -> dict:
    """:func:`split_metrics` for each test split, plus the per-frame predictions of the first 16 frames of each."""
    results = {"method": method, "splits": {}, "examples": {}}
    for name, data in tests.items():
        probs = predict(model, data, method, device, batch_size, quiet=quiet, desc=f"eval {name}")
        results["splits"][name] = split_metrics(probs, data)
        results["examples"][name] = [
            {"class": data.classes[i], "video": int(data.videos[i]),
             "marginals": dict(zip(NODE_NAMES, probs[i].round(4).tolist()))} for i in range(min(16, len(data)))]
    return results


def headline(results: dict) -> str:
    """One line per split: frame and video AUC."""
    return "\n".join(f"  {name:>13}: frame AUC {m['frame_auc']:.4f}  video AUC {m['video_auc']:.4f}"
                     for name, m in results["splits"].items())
