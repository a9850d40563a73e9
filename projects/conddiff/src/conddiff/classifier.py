"""Attribute classifiers of single-object shapes-world scenes: the judge of eval.py and the noise-aware
classifier of classifier guidance (survey Sec. 4.5; Dhariwal & Nichol 2021 train p_φ(y | x_t, t) on noisy x_t).

One small CNN with a head per attribute (shape, colour, size, position, background of object 0). With
``noise_aware`` it also takes the timestep t (a sinusoidal embedding added to every block, FiLM shift).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from shared.data import shapes_world as sw

ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "shape": sw.SHAPES, "colour": sw.COLOURS, "size": sw.SIZES, "position": sw.POSITIONS,
    "background": sw.BACKGROUNDS,
}


@dataclass
class ClassifierConfig:
    channels: tuple[int, ...] = (16, 32, 32)
    noise_aware: bool = False
    image_size: int = 32


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([args.sin(), args.cos()], dim=1)


class AttributeClassifier(nn.Module):
    def __init__(self, cfg: ClassifierConfig):
        super().__init__()
        self.cfg = cfg
        chans = (3, *cfg.channels)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Conv2d(chans[i], chans[i + 1], 3, stride=1 if i == 0 else 2, padding=1),
                          nn.GroupNorm(8, chans[i + 1]), nn.SiLU(),
                          nn.Conv2d(chans[i + 1], chans[i + 1], 3, padding=1), nn.GroupNorm(8, chans[i + 1]),
                          nn.SiLU())
            for i in range(len(cfg.channels)))
        if cfg.noise_aware:
            self.time = nn.ModuleList(nn.Linear(64, c) for c in cfg.channels)
        side = cfg.image_size // 2 ** (len(cfg.channels) - 1)
        self.pool = nn.AdaptiveAvgPool2d(4) if side > 4 else nn.Identity()
        feat = cfg.channels[-1] * min(side, 4) ** 2
        self.heads = nn.ModuleDict({k: nn.Linear(feat, len(v)) for k, v in ATTRIBUTES.items()})

    def forward(self, x: torch.Tensor, t: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Logits per attribute for images x (B, 3, H, W) in [-1, 1] (noisy x_t when noise-aware)."""
        temb = None
        if self.cfg.noise_aware:
            if t is None:
                raise ValueError("a noise-aware classifier needs the timestep t")
            temb = timestep_embedding(t.reshape(-1).expand(x.shape[0]), 64)
        for i, block in enumerate(self.blocks):
            x = block[:3](x)
            if temb is not None:
                x = x + self.time[i](temb)[:, :, None, None]
            x = block[3:](x)
        h = self.pool(x).flatten(1)
        return {k: head(h) for k, head in self.heads.items()}

    def save(self, path: str | Path, **meta) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(path / "model.safetensors"))
        (path / "config.json").write_text(json.dumps({"config": asdict(self.cfg), **meta}, indent=2))

    @classmethod
    def load(cls, path: str | Path, device="cpu") -> AttributeClassifier:
        path = Path(path)
        if not (path / "model.safetensors").is_file() or not (path / "config.json").is_file():
            raise FileNotFoundError(f"no attribute classifier at '{path}': expected model.safetensors and "
                                    "config.json written by `uv run train_judge.py`")
        cfg = json.loads((path / "config.json").read_text())["config"]
        cfg["channels"] = tuple(cfg["channels"])
        model = cls(ClassifierConfig(**cfg))
        model.load_state_dict(load_file(str(path / "model.safetensors")))
        return model.to(device).eval().requires_grad_(False)


def labels_of(batch: sw.ShapesBatch) -> dict[str, torch.Tensor]:
    """Attribute labels of object 0 (and the background) of a shapes batch."""
    return {"shape": torch.from_numpy(batch.shape[:, 0]), "colour": torch.from_numpy(batch.colour[:, 0]),
            "size": torch.from_numpy(batch.size[:, 0]), "position": torch.from_numpy(batch.position[:, 0]),
            "background": torch.from_numpy(batch.background)}


def classification_loss(logits: dict[str, torch.Tensor], labels: dict[str, torch.Tensor]) -> torch.Tensor:
    return sum(F.cross_entropy(logits[k], labels[k].to(logits[k].device)) for k in ATTRIBUTES)


def parse_prompt(prompt: str) -> dict[str, int]:
    """Attribute labels of a single-object caption "a {size} {colour} {shape} {position phrase} on a {bg} background"."""
    words = prompt.split()
    out = {}
    for attr, values in ATTRIBUTES.items():
        if attr == "background":
            hits = [values.index(w) for w in words[-2:-1] if w in values]
        else:
            hits = [values.index(w) for w in words[:-4] if w in values]
        if hits:
            out[attr] = hits[0]
    return out
