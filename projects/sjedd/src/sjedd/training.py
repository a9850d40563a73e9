"""Building blocks of the training loop shared by train.py, eval.py, reproduce.py and the benchmark: the model of a
config, the data of a config, the per-task losses of a batch, and the mini-batch order."""

from __future__ import annotations

from pathlib import Path

import torch

from sjedd.config import Config
from sjedd.data import FaceSet, ListFileDataset, offline_splits
from sjedd.graph import marginals
from sjedd.losses import task_losses
from sjedd.model import BinaryDetector, JointEmbeddingDetector, load_clip, load_pretrained_tiny, tiny_clip

PROJECT = Path(__file__).resolve().parents[2]


def build_model(cfg: Config) -> torch.nn.Module:
    """The detector of ``cfg.method`` on a real CLIP (``cfg.clip``) or a tiny one built offline (pretrained by
    ``pretrain.py`` when ``cfg.tiny_init`` is set)."""
    if cfg.clip is not None:
        clip, tokenizer = load_clip(cfg.clip)
    else:
        clip, tokenizer = tiny_clip(image_size=cfg.face_size, patch_size=cfg.tiny_patch, width=cfg.tiny_width,
                                    layers=cfg.tiny_layers, heads=max(1, cfg.tiny_width // 16),
                                    projection_dim=cfg.tiny_projection)
        if cfg.tiny_init is not None:
            path = Path(cfg.tiny_init)
            load_pretrained_tiny(clip, path if path.is_absolute() or path.exists() else PROJECT / path)
    if cfg.method == "binary":
        return BinaryDetector(clip)
    return JointEmbeddingDetector(clip, tokenizer, normalize=cfg.normalize)


def load_data(cfg: Config) -> dict[str, FaceSet]:
    """Train and test sets: the list-file dataset under ``--data-root``, or the offline synthetic faces."""
    if cfg.data_root is not None:
        size = cfg.image_size
        sets = {"train": ListFileDataset(cfg.data_root, cfg.train_list, cfg.n_frames, size).load()}
        for name in cfg.test_lists:
            sets[name] = ListFileDataset(cfg.data_root, name, cfg.n_frames, size).load()
        return sets
    return offline_splits(cfg.train_videos, cfg.test_videos, cfg.frames_per_video, cfg.face_size, cfg.seed)


def batch_losses(model: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor], method: str) -> torch.Tensor:
    """The per-task losses of one batch: [L1, L2, L3] fidelity losses on the marginals (Sec. III-D), or the
    baseline's binary cross-entropy as a one-element vector."""
    images, labels = batch
    if method == "binary":
        return torch.nn.functional.binary_cross_entropy_with_logits(model(images), labels[:, 0]).reshape(1)
    return task_losses(marginals(model(images)), labels)


def batches(data: FaceSet, batch_size: int, generator: torch.Generator):
    """Shuffled mini-batch indices over ``data`` (one epoch)."""
    order = torch.randperm(len(data), generator=generator)
    for start in range(0, len(order), batch_size):
        yield order[start:start + batch_size]
