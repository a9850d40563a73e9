"""Building blocks of the training loop shared by train.py, eval.py, reproduce.py and the benchmark: the model of a
config, the data of a config, the per-task losses of a batch, and the mini-batch order."""

from __future__ import annotations

from pathlib import Path

import torch

from sjedd.config import Config
from sjedd.data import FaceSet, ListFileDataset, offline_splits
from sjedd.graph import marginals
from sjedd.losses import task_losses

PROJECT = Path(__file__).resolve().parents[2]


def build_model(cfg: Config) -> torch.nn.Module:
    """The detector of ``cfg.method`` on a real CLIP (``cfg.clip``) or a tiny one built offline (pretrained by
    ``pretrain.py`` when ``cfg.tiny_init`` is set), with CLIP's image tower or a :class:`ConvImageTower`
    (``cfg.image_tower``). ``sjedd.model`` (and with it transformers) is imported here, not at module level, so that
    ``train.py --help`` stays fast."""
    from sjedd.model import (
        BinaryDetector,
        ConvImageTower,
        JointEmbeddingDetector,
        load_clip,
        load_pretrained_tiny,
        tiny_clip,
    )

    if cfg.clip is not None:
        clip, tokenizer = load_clip(cfg.clip)
    else:
        clip, tokenizer = tiny_clip(image_size=cfg.face_size, patch_size=cfg.tiny_patch, width=cfg.tiny_width,
                                    layers=cfg.tiny_layers, heads=max(1, cfg.tiny_width // 16),
                                    projection_dim=cfg.tiny_projection)
        if cfg.tiny_init is not None:
            load_pretrained_tiny(clip, _project_path(cfg.tiny_init))
    tower = ConvImageTower(clip.config.projection_dim, cfg.cnn_widths) if cfg.image_tower == "cnn" else None
    if cfg.method == "binary":
        return BinaryDetector(clip, None) if tower is None else BinaryDetector(None, tower)
    return JointEmbeddingDetector(clip, tokenizer, normalize=cfg.normalize, image_tower=tower)


def check_config(cfg: Config, args=None) -> None:
    """Everything that would fail later, checked before a run folder exists (``shared.runs.start``): the data root
    and list files of ``dataset=lists``, local CLIP weights for ``clip=``, the pretrained tiny CLIP file."""
    from shared.runs import UsageError
    from sjedd.model import load_clip, local_weights_folder

    if cfg.dataset == "lists":
        if cfg.data_root is None:
            raise UsageError("dataset=lists (the paper's data) needs --data-root with the list files (README, Real "
                             "data); the offline default is configs/cpu.yaml (dataset=faces_synth)")
        for name in (cfg.train_list, *cfg.test_lists):
            ListFileDataset(cfg.data_root, name, cfg.n_frames, cfg.image_size)
    if cfg.clip is not None and local_weights_folder(cfg.clip) is None:
        load_clip(cfg.clip)  # raises FileNotFoundError naming the weights and where to put them
    if cfg.clip is None and cfg.tiny_init is not None and not _project_path(cfg.tiny_init).is_file():
        raise UsageError(f"no pretrained tiny CLIP at {cfg.tiny_init!r}; make it with `uv run pretrain.py --config "
                         "configs/pretrain.yaml --export pretrained` or set tiny_init=null")


def _project_path(path: str) -> Path:
    """A relative path as given if it exists from here, else relative to the project folder."""
    p = Path(path)
    return p if p.is_absolute() or p.exists() else PROJECT / p


def load_data(cfg: Config) -> dict[str, FaceSet]:
    """Train and test sets: the list-file dataset under ``--data-root`` (``dataset=lists``), or the offline
    synthetic faces (``dataset=faces_synth``)."""
    if cfg.dataset == "lists":
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
