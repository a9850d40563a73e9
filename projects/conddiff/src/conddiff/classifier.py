"""Attribute classifiers of shapes-world scenes: the judges of eval.py and the noise-aware classifier of
classifier guidance (survey Sec. 4.5; Dhariwal & Nichol 2021 train p_φ(y | x_t, t) on noisy x_t).

One small CNN with a head per attribute: of object 0 of a single-object scene (shape, colour, size, position,
background; :data:`ATTRIBUTES`), or, with ``slots=True`` (the **scene judge** of multi-object scenes), of the
object in each of the four position slots (``shape@left`` ... ``texture@bottom``, each with an extra "absent"
class) plus the background (:data:`SLOT_ATTRIBUTES`). With ``noise_aware`` it also takes the timestep t (a
sinusoidal embedding added to every block, FiLM shift).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from shared.data import shapes_world as sw

ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "shape": sw.SHAPES, "colour": sw.COLOURS, "size": sw.SIZES, "position": sw.POSITIONS,
    "background": sw.BACKGROUNDS,
}


ABSENT = "absent"
SLOT_FIELDS: dict[str, tuple[str, ...]] = {"shape": sw.SHAPES, "colour": sw.COLOURS, "size": sw.SIZES,
                                           "texture": sw.TEXTURES}
SLOT_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    **{f"{f}@{p}": (*v, ABSENT) for p in sw.POSITIONS for f, v in SLOT_FIELDS.items()},
    "background": sw.BACKGROUNDS,
}


@dataclass
class ClassifierConfig:
    channels: tuple[int, ...] = (16, 32, 32)
    noise_aware: bool = False
    image_size: int = 32
    slots: bool = False  # a scene judge: heads per position slot (SLOT_ATTRIBUTES) instead of object 0

    @property
    def attributes(self) -> dict[str, tuple[str, ...]]:
        return SLOT_ATTRIBUTES if self.slots else ATTRIBUTES


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
        self.heads = nn.ModuleDict({k: nn.Linear(feat, len(v)) for k, v in cfg.attributes.items()})

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


def slot_labels_of(batch: sw.ShapesBatch) -> dict[str, torch.Tensor]:
    """Labels of :data:`SLOT_ATTRIBUTES`: per position slot the attribute of the object there, or "absent"."""
    codes = {"shape": batch.shape, "colour": batch.colour, "size": batch.size, "texture": batch.texture}
    out = {}
    for p in range(len(sw.POSITIONS)):
        here = batch.position == p  # (N, K): at most one object per slot
        has = here.any(1)
        k = here.argmax(1)
        for f, values in SLOT_FIELDS.items():
            code = np.take_along_axis(codes[f], k[:, None], 1)[:, 0]
            out[f"{f}@{sw.POSITIONS[p]}"] = torch.from_numpy(np.where(has, code, len(values)))
    out["background"] = torch.from_numpy(batch.background)
    return out


def classification_loss(logits: dict[str, torch.Tensor], labels: dict[str, torch.Tensor]) -> torch.Tensor:
    return sum(F.cross_entropy(logits[k], labels[k].to(logits[k].device)) for k in logits)


@torch.no_grad()
def read_scenes(judge: AttributeClassifier, images: torch.Tensor) -> list[dict]:
    """What a scene judge reads from images (B, 3, H, W) in [-1, 1]: per image {"background": name,
    "objects": {position: {"shape", "colour", "size", "texture"} or None (the shape head says absent)}}."""
    if not judge.cfg.slots:
        raise ValueError("read_scenes needs a scene judge (ClassifierConfig.slots=True, train_judge.py --slots)")
    logits = judge(images.to(next(judge.parameters()).device).clamp(-1, 1))
    picks = {k: v.argmax(1).tolist() for k, v in logits.items()}
    out = []
    for i in range(images.shape[0]):
        objects = {}
        for p in sw.POSITIONS:
            read = {f: SLOT_ATTRIBUTES[f"{f}@{p}"][picks[f"{f}@{p}"][i]] for f in SLOT_FIELDS}
            objects[p] = None if read["shape"] == ABSENT else read
        out.append({"background": sw.BACKGROUNDS[picks["background"][i]], "objects": objects})
    return out


def scene_of(scene: dict) -> dict:
    """A ``Scene.to_dict()`` in :func:`read_scenes`' form."""
    objects = {p: None for p in sw.POSITIONS}
    for o in scene["objects"]:
        objects[o["position"]] = {f: o.get(f, "plain") for f in SLOT_FIELDS}
    return {"background": scene["background"], "objects": objects}


def parse_prompt(prompt: str) -> dict[str, int]:
    """Attribute labels of a single-object caption "a {size} {colour} {shape} {position phrase} on a {bg}
    background"."""
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
