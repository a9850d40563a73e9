"""Train the text-to-image base model (pixel-space UNet2DConditionModel + small CLIP text encoder).

The survey's "training" stage of the denoising network (Sec. 3.1): ε-prediction with the DDPM loss and condition
dropout (the null caption "" is ∅), so that every sampling mechanism of Sec. 4 can run on it, classifier-free
guidance included. Data: fresh shapes-world scenes every step (default) or a captioned image folder
(``--data-root``). The EMA weights are saved in diffusers' folder layout to ``<run>/pipeline/``, which
``conddiff.pipeline.load_pipeline`` (and ``eval.py`` / ``reproduce.py`` / other projects) load by path.

    uv run train.py                       # the CPU default (configs/cpu.yaml), then a prompt-following score
    uv run train.py --config configs/base_multi.yaml   # the committed multi-object checkpoint's schedule
    uv run train.py --smoke               # seconds

The run machinery (start / resume / checkpoint sets / divergence guard) is ``shared.runs`` (shared/RUNS.md).
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from conddiff.assets import PROJECT
from conddiff.data import DataConfig
from conddiff.model import ModelConfig
from conddiff.text import TextConfig
from shared.runs import UsageError, entrypoint, guard_finite, progress, start


@dataclass
class TrainConfig:
    """Defaults: the Stable-Diffusion-style recipe the survey's T2I models share (see configs/paper.yaml)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    text: TextConfig = field(default_factory=TextConfig)
    data: DataConfig = field(default_factory=DataConfig)
    pixel_unshuffle: int = 2  # the UNet sees x_t as (12, 16, 16); the diffusion stays in pixel space
    steps: int = 20000
    batch_size: int = 64
    lr: float = 1e-4
    warmup_steps: int = 500
    min_lr_ratio: float = 0.1  # cosine decay to lr * min_lr_ratio
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    min_snr_gamma: float | None = None  # None: the plain DDPM loss
    ema_decay: float = 0.9999
    log_every: int = 50
    ckpt_every: int = 500
    eval_samples: int = 120  # prompt-following score at the end (0: skip)
    eval_cfg_scale: float = 3.0
    eval_steps: int = 25
    judge: str = "checkpoints/judge"  # attribute classifier for the final score (train_judge.py); relative to
    # the project folder unless absolute
    seed: int = 0
    device: str = "auto"
    dataset: str = "shapes"  # "shapes" (the offline shapes world) or "folder" (a captioned folder at data_root)
    data_root: str | None = None
    init_from: str | None = None  # start from the weights of a base-model folder (fine-tuning), e.g. checkpoints/base
    nan_at_step: int = 0  # > 0: make the loss NaN at this step (tests the divergence guard)


SMOKE = {"steps": 3, "batch_size": 4, "log_every": 1, "ckpt_every": 2, "warmup_steps": 1, "eval_samples": 4,
         "eval_steps": 2, "model.unet.block_out_channels": [8, 16], "model.unet.cross_attn_levels": [False, True],
         "model.unet.heads": 2, "model.unet.norm_groups": 4, "text.hidden_size": 16, "text.layers": 1,
         "text.heads": 2}


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to ``min_lr_ratio``."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    progress_ = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress_)))


@torch.no_grad()
def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p, 1 - decay)


def project_path(path: str) -> Path:
    """A config path: absolute, or relative to the project folder (so runs work from any directory)."""
    return Path(path) if Path(path).is_absolute() else PROJECT / path


def check_inputs(cfg: TrainConfig, args) -> None:
    if cfg.dataset not in ("shapes", "folder"):
        raise UsageError(f"dataset={cfg.dataset!r}: expected 'shapes' (offline) or 'folder' (with --data-root)")
    if cfg.dataset == "folder" and not cfg.data_root:
        raise UsageError("dataset=folder reads a captioned image folder: give --data-root (layout in the README)")
    if cfg.init_from and not (project_path(cfg.init_from) / "unet" / "config.json").is_file():
        raise UsageError(f"init_from={cfg.init_from}: no base-model folder there (expected unet/, text_encoder/, ...)")
    if cfg.eval_samples > 0 and not (project_path(cfg.judge) / "model.safetensors").is_file():
        raise UsageError(f"judge={cfg.judge}: no attribute judge there (uv run train_judge.py), or eval_samples=0")


def build_pipeline(cfg: TrainConfig):
    from conddiff.model import build_scheduler, build_unet
    from conddiff.pipeline import Pipeline
    from conddiff.text import build_text_encoder, build_tokenizer

    tokenizer = build_tokenizer(cfg.text.max_length)
    text_encoder = build_text_encoder(cfg.text, tokenizer)
    unet_cfg = copy.deepcopy(cfg.model.unet)
    unet_cfg.image_size = cfg.data.image_size // cfg.pixel_unshuffle
    unet = build_unet(unet_cfg, cfg.text.hidden_size, in_channels=3 * cfg.pixel_unshuffle**2)
    return Pipeline(unet, text_encoder, tokenizer, build_scheduler(cfg.model.schedule), None, cfg.pixel_unshuffle,
                    cfg.data.image_size)


@entrypoint
def main(argv: list[str] | None = None) -> Path:
    s = start(TrainConfig, argv, tag="t2i", description=__doc__,
              default_config=PROJECT / "configs" / "cpu.yaml", smoke=SMOKE,
              uses_data_root=lambda c: c.dataset == "folder", data_root_hint="dataset=folder", check=check_inputs,
              packages=("conddiff", "torch", "diffusers", "transformers"))
    cfg, run, device, quiet = s.cfg, s.run, s.device, s.args.quiet
    from conddiff.data import CaptionedImageFolder, ShapesStream
    from conddiff.diffusion import add_noise, ddpm_loss
    from conddiff.model import count_parameters
    from conddiff.pipeline import Pipeline
    from conddiff.text import tokenize

    data = CaptionedImageFolder(cfg.data_root, cfg.data, cfg.seed) if cfg.dataset == "folder" else ShapesStream(
        cfg.data, cfg.seed)
    pipe = build_pipeline(cfg).to(device)
    if cfg.init_from and not s.resumed:
        init_weights(pipe, str(project_path(cfg.init_from)))
    unet, text_encoder = pipe.unet.train(), pipe.text_encoder.train()
    ema_unet, ema_text = copy.deepcopy(unet).eval(), copy.deepcopy(text_encoder).eval()
    params = list(unet.parameters()) + list(text_encoder.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr_factor(step, cfg))
    abar = pipe.scheduler.alphas_cumprod.to(device)
    T = cfg.model.schedule.num_train_timesteps
    modules = {"unet": unet, "text_encoder": text_encoder, "ema_unet": ema_unet, "ema_text_encoder": ema_text}
    optimizers = {"opt": opt, "sched": sched}

    done = 0
    if s.resumed and run.has_checkpoint("last"):
        done = run.load_checkpoint("last", modules, optimizers=optimizers)["step"]
        run.rewind_metrics(done)
        s.log(f"resumed {run.path} after step {done}")
    s.log(f"UNet {count_parameters(unet):,} params, text encoder {count_parameters(text_encoder):,} params, "
          f"device {device}, steps {cfg.steps}, batch {cfg.batch_size}")

    t0, loss_sum, n_sum = time.time(), 0.0, 0
    for step in progress(range(done, cfg.steps), total=cfg.steps - done, desc="train", quiet=quiet):
        x0, captions = data.batch(step, cfg.batch_size)
        x0 = x0.to(device)
        g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)  # per-step noise: resumable exactly
        t = torch.randint(0, T, (cfg.batch_size,), generator=g).to(device)
        eps = torch.randn(x0.shape, generator=g).to(device)
        x_t = add_noise(x0, eps, abar[t])
        emb = text_encoder(tokenize(pipe.tokenizer, captions, device))[0]
        loss = ddpm_loss(pipe.eps(x_t, t, emb), eps, abar[t], cfg.min_snr_gamma)
        if step + 1 == cfg.nan_at_step:
            loss = loss * float("nan")
        guard_finite(step + 1, loss=loss)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        guard_finite(step + 1, grad_norm=grad_norm)
        opt.step()
        sched.step()
        decay = min(cfg.ema_decay, (1 + step) / (10 + step))
        ema_update(ema_unet, unet, decay)
        ema_update(ema_text, text_encoder, decay)
        loss_sum, n_sum = loss_sum + loss.item(), n_sum + 1
        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps:
            run.log_metrics(step=step + 1, loss=loss_sum / n_sum, lr=sched.get_last_lr()[0])
            run.log(f"step {step + 1}/{cfg.steps} loss {loss_sum / n_sum:.4f} "
                    f"{(time.time() - t0) / n_sum:.2f} s/step", quiet=True)
            t0, loss_sum, n_sum = time.time(), 0.0, 0
        if (step + 1) % cfg.ckpt_every == 0 or step + 1 == cfg.steps:
            run.save_checkpoint("last", modules, optimizers=optimizers, state={"step": step + 1})
    save_ema_pipeline(pipe, ema_unet, ema_text, run.path / "pipeline")  # diffusers layout: load_pipeline reads it

    metrics = run.read_metrics()
    summary = {"final_loss": metrics[-1]["loss"] if metrics else None, "steps": cfg.steps}
    if cfg.eval_samples > 0:
        from conddiff.evaluate import prompt_following_score  # the judge and the sampler

        ema_pipe = Pipeline(ema_unet, ema_text, pipe.tokenizer, pipe.scheduler, None, pipe.pixel_unshuffle,
                            pipe.image_size).eval()
        summary.update(prompt_following_score(ema_pipe, str(project_path(cfg.judge)), cfg.eval_samples,
                                              cfg.eval_cfg_scale, cfg.eval_steps, cfg.seed, cfg.data))
    run.finish(summary)
    s.log(f"run folder: {run.path}")
    s.log("headline: " + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                                   for k, v in summary.items()))
    return run.path


def init_weights(pipe, folder: str) -> None:
    """Copy the weights of a saved base model into ``pipe`` (same architecture). A tensor whose shape differs only
    in its first dimension (the token embedding after the vocabulary grew) has its common rows copied."""
    from conddiff.pipeline import load_pipeline

    src = load_pipeline(folder, "cpu")
    for dst_module, src_module in ((pipe.unet, src.unet), (pipe.text_encoder, src.text_encoder)):
        own, theirs = dst_module.state_dict(), src_module.state_dict()
        if set(own) != set(theirs):
            diff = sorted(set(own) ^ set(theirs))[:4]
            raise ValueError(f"init_from={folder}: architecture differs (parameters {diff})")
        with torch.no_grad():
            for k, v in own.items():
                w = theirs[k]
                if w.shape == v.shape:
                    v.copy_(w)
                elif w.shape[1:] == v.shape[1:] and w.shape[0] <= v.shape[0]:
                    v[: w.shape[0]].copy_(w)
                else:
                    raise ValueError(f"init_from={folder}: {k} has shape {tuple(w.shape)}, expected {tuple(v.shape)}")


def save_ema_pipeline(pipe, ema_unet, ema_text, path: Path) -> None:
    """Write the EMA weights in diffusers' folder layout (what load_pipeline reads)."""
    from conddiff.pipeline import Pipeline

    Pipeline(ema_unet, ema_text, pipe.tokenizer, pipe.scheduler, None, pipe.pixel_unshuffle,
             pipe.image_size).save(path)


if __name__ == "__main__":
    main()
