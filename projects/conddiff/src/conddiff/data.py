"""Training data: the offline shapes world (default) or a real captioned image folder (``--data-root``).

Real data layout (Hugging Face ``imagefolder`` with captions, as diffusers' text-to-image examples use)::

    <data-root>/metadata.jsonl      # one JSON object a line: {"file_name": "0001.png", "text": "a caption"}
    <data-root>/<file_name>         # the images (any format PIL reads), resized to the model's image size
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from shared.data import DatasetRoot
from shared.data import shapes_world as sw


@dataclass
class DataConfig:
    """Which scenes the base model is trained on (shapes world) and the caption-dropout rate."""

    image_size: int = 32
    min_objects: int = 1
    max_objects: int = 1
    jitter: int = 1
    cond_dropout: float = 0.1  # probability of the null caption "" (∅ for classifier-free guidance)


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> float (B, 3, H, W) in [-1, 1]."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """float (B, 3, H, W) in [-1, 1] -> uint8 (B, H, W, 3)."""
    return ((x.detach().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()


def drop_captions(captions: list[str], p: float, rng: np.random.Generator) -> list[str]:
    """Replace each caption by the null caption "" with probability p (condition dropout)."""
    keep = rng.random(len(captions)) >= p
    return [c if k else "" for c, k in zip(captions, keep)]


class ShapesStream:
    """Fresh shapes-world batches, batch i drawn from seed (seed, i): deterministic and resumable."""

    def __init__(self, cfg: DataConfig, seed: int):
        self.cfg, self.seed = cfg, seed

    def batch(self, step: int, batch_size: int) -> tuple[torch.Tensor, list[str]]:
        c = self.cfg
        b = sw.generate(batch_size, self.seed * 1_000_003 + step, c.image_size, c.min_objects, c.max_objects,
                        c.jitter)
        rng = np.random.default_rng([self.seed, step, 1])
        return to_tensor(b.images), drop_captions(b.captions, c.cond_dropout, rng)


class CaptionedImageFolder(DatasetRoot):
    """A real captioned image folder (``imagefolder`` layout with ``metadata.jsonl``)."""

    name = "captioned image folder"
    layout = "<root>/metadata.jsonl with lines {\"file_name\": ..., \"text\": ...}; <root>/<file_name> images"
    required = ("metadata.jsonl",)

    def __init__(self, root: str | Path, cfg: DataConfig, seed: int):
        super().__init__(root)
        from PIL import Image

        self.cfg, self.seed = cfg, seed
        lines = [json.loads(s) for s in (self.root / "metadata.jsonl").read_text().splitlines() if s.strip()]
        if not lines or not all("file_name" in d and "text" in d for d in lines):
            raise FileNotFoundError(f"'{self.root / 'metadata.jsonl'}' is empty or lacks file_name/text keys; "
                                    f"expected {self.layout}")
        images = []
        for d in lines:
            f = self.root / d["file_name"]
            if not f.is_file():
                raise FileNotFoundError(f"image '{f}' listed in metadata.jsonl is missing; expected {self.layout}")
            img = Image.open(f).convert("RGB").resize((cfg.image_size, cfg.image_size), Image.BICUBIC)
            images.append(np.asarray(img))
        self.images = np.stack(images)
        self.captions = [d["text"] for d in lines]

    def batch(self, step: int, batch_size: int) -> tuple[torch.Tensor, list[str]]:
        rng = np.random.default_rng([self.seed, step])
        idx = rng.integers(0, len(self.images), batch_size)
        caps = drop_captions([self.captions[i] for i in idx], self.cfg.cond_dropout, rng)
        return to_tensor(self.images[idx]), caps
