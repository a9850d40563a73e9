"""The base model as one object (UNet, text encoder, tokenizer, scheduler, optional VAE), saved and loaded in
diffusers' folder format.

Folder layout (the same as a Stable Diffusion checkpoint, so one loader serves both)::

    <path>/unet/{config.json, diffusion_pytorch_model.safetensors}
    <path>/text_encoder/{config.json, model.safetensors}
    <path>/tokenizer/{tokenizer.json, tokenizer_config.json, ...}
    <path>/scheduler/scheduler_config.json
    <path>/vae/...                          # latent models only (Stable Diffusion)
    <path>/conddiff.json                    # our pixel-space models only: {"pixel_unshuffle": 2, "image_size": 32}

Our shapes-world model denoises in **pixel space**: the diffusion state x_t is the (B, 3, 32, 32) image in
[-1, 1]; the UNet sees it through a fixed pixel-unshuffle (space-to-depth, an orthogonal permutation of the
pixels) as (B, 12, 16, 16), which makes it 4x cheaper on a CPU without changing the diffusion process. A Stable
Diffusion folder (with ``vae/``) denoises VAE latents instead; :meth:`Pipeline.encode` / :meth:`Pipeline.decode`
hide the difference from the sampler.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from conddiff.text import encode_prompts


@dataclass
class Pipeline:
    """Everything the sampler needs. ``eps(x, t, emb)`` is ε_θ(x_t, t, c) in the diffusion space."""

    unet: UNet2DConditionModel  # noqa: F821
    text_encoder: torch.nn.Module
    tokenizer: object
    scheduler: DDIMScheduler  # noqa: F821
    vae: torch.nn.Module | None = None
    pixel_unshuffle: int = 1
    image_size: int = 32
    vae_scale: float = 0.18215

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    @property
    def alphas_cumprod(self) -> torch.Tensor:
        """ᾱ_t for t = 0..T-1 (float64 on the model's device)."""
        return self.scheduler.alphas_cumprod.to(self.device, torch.float64)

    def encode_prompts(self, prompts: list[str]) -> torch.Tensor:
        return encode_prompts(self.text_encoder, self.tokenizer, prompts)

    def eps(self, x: torch.Tensor, t: torch.Tensor | int, emb: torch.Tensor) -> torch.Tensor:
        """ε_θ(x_t, t, c) for a batch of states x (B, C, H, W) and prompt embeddings emb (B, L, D)."""
        if not torch.is_tensor(t):
            t = torch.full((x.shape[0],), int(t), device=x.device, dtype=torch.long)
        r = self.pixel_unshuffle
        h = F.pixel_unshuffle(x, r) if r > 1 else x
        out = self.unet(h, t, encoder_hidden_states=emb).sample
        return F.pixel_shuffle(out, r) if r > 1 else out

    def state_shape(self, batch: int) -> tuple[int, int, int, int]:
        """Shape of x_t for ``batch`` samples."""
        if self.vae is None:
            return (batch, 3, self.image_size, self.image_size)
        f = 2 ** (len(self.vae.config.block_out_channels) - 1)
        return (batch, self.unet.config.in_channels, self.image_size // f, self.image_size // f)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Images (B, 3, H, W) in [-1, 1] -> diffusion states x_0 (identity in pixel space)."""
        if self.vae is None:
            return images
        return self.vae.encode(images).latent_dist.mean * self.vae_scale

    def decode(self, x0: torch.Tensor) -> torch.Tensor:
        """Diffusion states x_0 -> images (B, 3, H, W) in [-1, 1]."""
        if self.vae is None:
            return x0.clamp(-1, 1)
        return self.vae.decode(x0 / self.vae_scale).sample.clamp(-1, 1)

    def to(self, device) -> Pipeline:
        for m in (self.unet, self.text_encoder, self.vae):
            if m is not None:
                m.to(device)
        return self

    def eval(self) -> Pipeline:
        for m in (self.unet, self.text_encoder, self.vae):
            if m is not None:
                m.eval().requires_grad_(False)
        return self

    def save(self, path: str | Path) -> None:
        """Write the diffusers folder layout described in the module docstring."""
        path = Path(path)
        self.unet.save_pretrained(path / "unet")
        self.text_encoder.save_pretrained(path / "text_encoder")
        self.tokenizer.save_pretrained(path / "tokenizer")
        self.scheduler.save_pretrained(path / "scheduler")
        if self.vae is not None:
            self.vae.save_pretrained(path / "vae")
        else:
            (path / "conddiff.json").write_text(json.dumps(
                {"pixel_unshuffle": self.pixel_unshuffle, "image_size": self.image_size}, indent=2))


REQUIRED = ("unet/config.json", "text_encoder/config.json", "scheduler/scheduler_config.json")


def load_pipeline(path_or_hub_id: str | Path, device: str | torch.device = "cpu", dtype=torch.float32) -> Pipeline:
    """Load a base model saved by :meth:`Pipeline.save` (ours) or a Stable Diffusion folder / cached hub id.

    Nothing is downloaded (``local_files_only``); a missing folder raises ``FileNotFoundError`` naming the
    expected layout. Returns the pipeline in eval mode with gradients off, on ``device``.
    """
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import AutoTokenizer, CLIPTextModel

    path = Path(path_or_hub_id)
    if path.exists():
        missing = [r for r in REQUIRED if not (path / r).is_file()]
        if missing:
            raise FileNotFoundError(
                f"'{path}' is not a base-model folder: missing {missing}. Expected the diffusers layout "
                "unet/, text_encoder/, tokenizer/, scheduler/ (+ vae/ for latent models, conddiff.json for ours), "
                "as written by `uv run train.py` (run folder 'pipeline/') or a Stable Diffusion checkpoint.")
        source, kw = str(path), {}
    else:
        source, kw = str(path_or_hub_id), {"local_files_only": True}
    try:
        unet = UNet2DConditionModel.from_pretrained(source, subfolder="unet", torch_dtype=dtype, **kw)
        text_encoder = CLIPTextModel.from_pretrained(source, subfolder="text_encoder", torch_dtype=dtype, **kw)
        tokenizer = AutoTokenizer.from_pretrained(source, subfolder="tokenizer", **kw)
        scheduler = DDIMScheduler.from_pretrained(source, subfolder="scheduler", **kw)
    except OSError as err:
        raise FileNotFoundError(
            f"cannot load base model '{path_or_hub_id}': not a local folder and not in the Hugging Face cache "
            "(nothing is downloaded). Put a diffusers folder (unet/, text_encoder/, tokenizer/, scheduler/, vae/), "
            "e.g. a Stable Diffusion v1.x checkpoint, at that path.") from err
    meta_file = path / "conddiff.json"
    if meta_file.is_file():
        meta = json.loads(meta_file.read_text())
        pipe = Pipeline(unet, text_encoder, tokenizer, scheduler, None, int(meta["pixel_unshuffle"]),
                        int(meta["image_size"]))
    else:
        vae = AutoencoderKL.from_pretrained(source, subfolder="vae", torch_dtype=dtype, **kw)
        size = unet.config.sample_size * 2 ** (len(vae.config.block_out_channels) - 1)
        pipe = Pipeline(unet, text_encoder, tokenizer, scheduler, vae, 1, size,
                        getattr(vae.config, "scaling_factor", 0.18215))
    return pipe.to(device).eval()
