"""Denoisers D(x, σ) in the EDM parameterisation, and the diffusers-checkpoint teacher.

* :class:`EDMPrecond` -- EDM preconditioning (Karras et al. 2022, Table 1 / Eq. 7):
  D(x, σ) = c_skip(σ)·x + c_out(σ)·F(c_in(σ)·x, c_noise(σ)), c_skip = σ_d²/(σ² + σ_d²),
  c_out = σ·σ_d/sqrt(σ² + σ_d²), c_in = 1/sqrt(σ² + σ_d²), c_noise = ln(σ)/4.
* :class:`MLPNet` (2-D toy) and :class:`TinyUNet` (8×8 digits): the raw networks F. Both accept the SFD-v step
  condition: the integer number of timestamps is embedded (positional embedding + 2 linear layers with SiLU) and
  injected into every block through its own affine scale/shift (``affine_step``, official ``networks_edm.py``).
  The last layer of each ``affine_step`` starts at zero, so a step-conditioned student built from a teacher
  reproduces the teacher exactly at initialisation.
* :class:`DiffusersVPDenoiser` -- a diffusers ``UNet2DModel`` trained as a discrete-time DDPM (VP, ε-prediction)
  seen as an EDM (VE) denoiser: x_vp = x/sqrt(1 + σ²), D(x, σ) = x − σ·ε(x_vp, τ(σ)).
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


# ---- embeddings ---------------------------------------------------------------------------------------
def positional_embedding(x: torch.Tensor, dim: int, max_positions: int = 10000) -> torch.Tensor:
    """Transformer sinusoidal embedding of a (B,) tensor: [cos(x·f_k), sin(x·f_k)], f_k = (1/max)^(k/(dim/2))."""
    half = dim // 2
    freqs = (1.0 / max_positions) ** (torch.arange(half, device=x.device, dtype=torch.float32) / half)
    angles = x.float()[:, None] * freqs[None, :]
    return torch.cat([angles.cos(), angles.sin()], dim=1)


class FourierEmbedding(nn.Module):
    """Random Fourier features of c_noise (NCSN++ / EDM ``FourierEmbedding``, scale 16)."""

    def __init__(self, dim: int, scale: float = 16.0):
        super().__init__()
        self.register_buffer("freqs", torch.randn(dim // 2) * scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        angles = (2 * math.pi * x.float())[:, None] * self.freqs[None, :]
        return torch.cat([angles.cos(), angles.sin()], dim=1)


class StepEmbedding(nn.Module):
    """SFD-v: the integer step count → positional embedding → Linear-SiLU-Linear-SiLU (official ``map_step``)."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim), nn.SiLU())

    def forward(self, num_steps: torch.Tensor) -> torch.Tensor:
        return self.mlp(positional_embedding(num_steps, self.dim))


def _zero(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class AffineStep(nn.Module):
    """Per-block affine injection of the step embedding: h ← h·(1 + scale) + shift (zero at init)."""

    def __init__(self, emb_dim: int, channels: int):
        super().__init__()
        self.proj = _zero(nn.Linear(emb_dim, 2 * channels))

    def forward(self, h: torch.Tensor, step_emb: torch.Tensor) -> torch.Tensor:
        scale, shift = self.proj(step_emb).chunk(2, dim=1)
        shape = (h.shape[0], -1) + (1,) * (h.ndim - 2)
        return h * (1 + scale.reshape(shape)) + shift.reshape(shape)


# ---- raw networks F -----------------------------------------------------------------------------------
class MLPBlock(nn.Module):
    def __init__(self, width: int, emb_dim: int, step_condition: bool):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.affine = nn.Linear(emb_dim, 2 * width)
        self.affine_step = AffineStep(emb_dim, width) if step_condition else None
        self.fc = nn.Linear(width, width)

    def forward(self, h, emb, step_emb):
        scale, shift = self.affine(emb).chunk(2, dim=1)
        z = self.norm(h) * (1 + scale) + shift
        if self.affine_step is not None:
            z = self.affine_step(z, step_emb)
        return h + self.fc(F.silu(z))


class MLPNet(nn.Module):
    """Residual MLP F(x, c_noise[, num_steps]) for low-dimensional data (the 2-D toy, the 64-pixel digits).

    Any input shape (B, ...) with ``dim`` values per sample; the output has the input's shape."""

    def __init__(self, dim: int = 2, width: int = 256, depth: int = 3, emb_dim: int = 128,
                 step_condition: bool = False):
        super().__init__()
        self.step_condition = step_condition
        self.map_noise = FourierEmbedding(emb_dim)
        self.map_emb = nn.Sequential(nn.Linear(emb_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim), nn.SiLU())
        self.map_step = StepEmbedding(emb_dim) if step_condition else None
        self.inp = nn.Linear(dim, width)
        self.blocks = nn.ModuleList(MLPBlock(width, emb_dim, step_condition) for _ in range(depth))
        self.out = nn.Sequential(nn.LayerNorm(width), nn.SiLU(), nn.Linear(width, dim))

    def forward(self, x, c_noise, num_steps=None):
        emb = self.map_emb(self.map_noise(c_noise))
        step_emb = _step_emb(self.map_step, num_steps, x)
        h = self.inp(x.flatten(1))
        for block in self.blocks:
            h = block(h, emb, step_emb)
        return self.out(h).reshape(x.shape)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-Conv, FiLM by the noise embedding (and ``affine_step``), SiLU-Conv (zero init), skip."""

    def __init__(self, cin: int, cout: int, emb_dim: int, step_condition: bool, dropout: float = 0.0):
        super().__init__()
        self.norm1 = nn.GroupNorm(min(8, cin), cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.affine = nn.Linear(emb_dim, 2 * cout)
        self.affine_step = AffineStep(emb_dim, cout) if step_condition else None
        self.norm2 = nn.GroupNorm(min(8, cout), cout)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = _zero(nn.Conv2d(cout, cout, 3, padding=1))
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x, emb, step_emb):
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.affine(emb).chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale[:, :, None, None]) + shift[:, :, None, None]
        if self.affine_step is not None:
            h = self.affine_step(h, step_emb)
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class TinyUNet(nn.Module):
    """A two-resolution UNet (8×8 → 4×4 → 8×8) in the DDPM++ style, for the 8×8 digits."""

    def __init__(self, in_channels: int = 1, channels: int = 64, emb_dim: int = 128, dropout: float = 0.0,
                 step_condition: bool = False):
        super().__init__()
        c, args = channels, (emb_dim, step_condition, dropout)
        self.step_condition = step_condition
        self.map_noise = FourierEmbedding(emb_dim)
        self.map_emb = nn.Sequential(nn.Linear(emb_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim), nn.SiLU())
        self.map_step = StepEmbedding(emb_dim) if step_condition else None
        self.conv_in = nn.Conv2d(in_channels, c, 3, padding=1)
        self.enc1 = ResBlock(c, c, *args)
        self.down = nn.Conv2d(c, 2 * c, 3, stride=2, padding=1)
        self.enc2 = ResBlock(2 * c, 2 * c, *args)
        self.mid = ResBlock(2 * c, 2 * c, *args)
        self.up = nn.ConvTranspose2d(2 * c, c, 2, stride=2)
        self.dec1 = ResBlock(2 * c, c, *args)
        self.dec2 = ResBlock(c, c, *args)
        self.out = nn.Sequential(nn.GroupNorm(8, c), nn.SiLU(), _zero(nn.Conv2d(c, in_channels, 3, padding=1)))

    def forward(self, x, c_noise, num_steps=None):
        emb = self.map_emb(self.map_noise(c_noise))
        s = _step_emb(self.map_step, num_steps, x)
        h1 = self.enc1(self.conv_in(x), emb, s)
        h2 = self.mid(self.enc2(self.down(h1), emb, s), emb, s)
        h = self.dec1(torch.cat([self.up(h2), h1], dim=1), emb, s)
        return self.out(self.dec2(h, emb, s))


def _step_emb(map_step: nn.Module | None, num_steps, x: torch.Tensor) -> torch.Tensor | None:
    if map_step is None:
        return None
    if num_steps is None:
        raise ValueError("this network is step-conditioned (SFD-v): pass num_steps, the number of timestamps")
    steps = torch.as_tensor(num_steps, device=x.device, dtype=torch.float32).reshape(-1).expand(x.shape[0])
    return map_step(steps)


# ---- EDM preconditioning ------------------------------------------------------------------------------
class EDMPrecond(nn.Module):
    """D(x, σ) = c_skip·x + c_out·F(c_in·x, ln(σ)/4) (Karras et al. 2022, Eq. 7 and Table 1)."""

    def __init__(self, net: nn.Module, sigma_data: float = 0.5):
        super().__init__()
        self.net = net
        self.sigma_data = sigma_data

    @property
    def step_condition(self) -> bool:
        return bool(getattr(self.net, "step_condition", False))

    def forward(self, x: torch.Tensor, sigma, num_steps=None) -> torch.Tensor:
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1)
        if sigma.numel() == 1:
            sigma = sigma.expand(x.shape[0])
        if sigma.shape[0] != x.shape[0]:
            raise ValueError(f"sigma has {sigma.shape[0]} entries for a batch of {x.shape[0]}")
        shape = (-1,) + (1,) * (x.ndim - 1)
        sd = self.sigma_data
        c_skip = (sd**2 / (sigma**2 + sd**2)).reshape(shape)
        c_out = (sigma * sd / (sigma**2 + sd**2).sqrt()).reshape(shape)
        c_in = (1 / (sigma**2 + sd**2).sqrt()).reshape(shape)
        c_noise = sigma.log() / 4
        f = self.net(c_in * x, c_noise, num_steps)
        return c_skip * x + c_out * f.to(x.dtype)


def with_step_condition(teacher: EDMPrecond, build) -> EDMPrecond:
    """A step-conditioned copy of ``teacher`` (SFD-v student): ``build(step_condition=True)`` makes the raw net;
    the teacher's weights are copied in and the new ``map_step``/``affine_step`` layers keep their init."""
    net = build(step_condition=True)
    missing, unexpected = net.load_state_dict(teacher.net.state_dict(), strict=False)
    if unexpected or any("step" not in k for k in missing):
        raise ValueError(f"teacher and student architectures differ: missing {missing}, unexpected {unexpected}")
    return EDMPrecond(net, teacher.sigma_data)


def student_from_teacher(teacher: EDMPrecond, build=None, step_condition: bool = False) -> EDMPrecond:
    """SFD: the student is a copy of the teacher (the whole network is fine-tuned)."""
    if step_condition:
        if build is None:
            raise ValueError("an SFD-v student needs `build`, the raw-network constructor")
        return with_step_condition(teacher, build)
    return copy.deepcopy(teacher)


# ---- diffusers DDPM teacher ---------------------------------------------------------------------------
class DiffusersVPDenoiser(nn.Module):
    """An EDM (VE) denoiser from a diffusers ``UNet2DModel`` trained as a discrete DDPM.

    The VP process x_vp = sqrt(ᾱ)·x_0 + sqrt(1 − ᾱ)·ε maps to the VE state x = x_vp/sqrt(ᾱ) with
    σ = sqrt((1 − ᾱ)/ᾱ) (Karras et al. 2022, App. C.1). For a query σ the continuous DDPM timestep τ(σ) is
    found by linear interpolation of the log-σ table of the discrete steps (clamped to its range, so σ below
    σ(τ = 0) uses τ = 0), and D(x, σ) = x − σ·ε_θ(x/sqrt(1 + σ²), τ(σ)) for ``epsilon`` prediction
    (``v_prediction`` and ``sample`` are converted accordingly).
    """

    def __init__(self, unet: nn.Module, alphas_cumprod: torch.Tensor, prediction_type: str = "epsilon"):
        super().__init__()
        if prediction_type not in ("epsilon", "v_prediction", "sample"):
            raise ValueError(f"unsupported prediction_type {prediction_type!r}")
        self.unet = unet
        self.prediction_type = prediction_type
        sigmas = ((1 - alphas_cumprod) / alphas_cumprod).sqrt().double()
        self.register_buffer("log_sigmas", sigmas.log())
        self.sigma_min, self.sigma_max = float(sigmas[0]), float(sigmas[-1])
        self.step_condition = False

    @classmethod
    def from_pretrained(cls, path: str | Path, subfolder: str | None = "unet") -> DiffusersVPDenoiser:
        """Load ``<path>/unet`` (or ``path`` itself) and ``<path>/scheduler`` (DDPM betas; linear 1e-4..0.02
        over 1000 steps when absent). A missing folder names the weights needed."""
        from diffusers import DDPMScheduler, UNet2DModel

        root = Path(path)
        unet_dir = root / subfolder if subfolder and (root / subfolder).is_dir() else root
        if not (unet_dir / "config.json").is_file():
            raise FileNotFoundError(
                f"no diffusers UNet2DModel at '{unet_dir}': expected config.json and "
                "diffusion_pytorch_model.safetensors (e.g. the DDPM CIFAR-10 model google/ddpm-cifar10-32 "
                "saved with save_pretrained, with its scheduler/ folder beside unet/). Nothing is downloaded.")
        unet = UNet2DModel.from_pretrained(unet_dir)
        if (root / "scheduler" / "scheduler_config.json").is_file():
            scheduler = DDPMScheduler.from_pretrained(root, subfolder="scheduler")
        else:
            scheduler = DDPMScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02)
        return cls(unet, scheduler.alphas_cumprod, scheduler.config.prediction_type)

    def timestep(self, sigma: torch.Tensor) -> torch.Tensor:
        """Continuous DDPM timestep τ(σ) by linear interpolation in log σ."""
        log_s = sigma.double().log().clamp(self.log_sigmas[0], self.log_sigmas[-1])
        idx = torch.searchsorted(self.log_sigmas, log_s).clamp(1, len(self.log_sigmas) - 1)
        lo, hi = self.log_sigmas[idx - 1], self.log_sigmas[idx]
        return (idx - 1 + (log_s - lo) / (hi - lo)).float()

    def forward(self, x: torch.Tensor, sigma, num_steps=None) -> torch.Tensor:
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1).expand(x.shape[0])
        s = sigma.reshape(-1, 1, 1, 1)
        x_vp = x / (1 + s**2).sqrt()
        out = self.unet(x_vp, self.timestep(sigma)).sample.to(x.dtype)
        if self.prediction_type == "epsilon":
            eps = out
        elif self.prediction_type == "sample":
            return out
        else:  # v = sqrt(ᾱ)·ε − sqrt(1 − ᾱ)·x0 ⇒ ε = sqrt(ᾱ)·v + sqrt(1 − ᾱ)·x_vp
            a, b = 1 / (1 + s**2).sqrt(), s / (1 + s**2).sqrt()
            eps = a * out + b * x_vp
        return x - s * eps
