"""Train the text-to-image base model (pixel-space UNet2DConditionModel + small CLIP text encoder).

The survey's "training" stage of the denoising network (Sec. 3.1): ε-prediction with the DDPM loss and condition
dropout (the null caption "" is ∅), so that every sampling mechanism of Sec. 4 can run on it, classifier-free
guidance included. Data: fresh shapes-world scenes every step (default) or a captioned image folder
(``--data-root``). The EMA weights are saved in diffusers' folder layout to ``<run>/pipeline/``, which
``conddiff.pipeline.load_pipeline`` (and ``eval.py`` / ``reproduce.py`` / other projects) load by path.

    uv run train.py                       # the ~10-minute CPU default (configs/cpu.yaml), then a prompt-following score
    uv run train.py --config configs/base.yaml   # the long schedule of the committed checkpoint
    uv run train.py --smoke               # seconds
"""

from __future__ import annotations

import copy
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from conddiff.data import CaptionedImageFolder, DataConfig, ShapesStream
from conddiff.diffusion import add_noise, ddpm_loss
from conddiff.model import ModelConfig, build_scheduler, build_unet, count_parameters
from conddiff.pipeline import Pipeline
from conddiff.text import TextConfig, build_text_encoder, build_tokenizer, tokenize
from shared.runs import RunDir, parse_args, progress, seed_everything, select_device
from shared.runs.cli import build_parser

HERE = Path(__file__).resolve().parent
DEFAULT_JUDGE = HERE / "checkpoints" / "judge"


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
    judge: str = str(DEFAULT_JUDGE)  # attribute classifier for the final score (train_judge.py)
    seed: int = 0
    device: str = "auto"
    data_root: str | None = None
    init_from: str | None = None  # start from the weights of a base-model folder (fine-tuning), e.g. checkpoints/base


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


def build_pipeline(cfg: TrainConfig) -> Pipeline:
    tokenizer = build_tokenizer(cfg.text.max_length)
    text_encoder = build_text_encoder(cfg.text, tokenizer)
    unet_cfg = copy.deepcopy(cfg.model.unet)
    unet_cfg.image_size = cfg.data.image_size // cfg.pixel_unshuffle
    unet = build_unet(unet_cfg, cfg.text.hidden_size, in_channels=3 * cfg.pixel_unshuffle**2)
    return Pipeline(unet, text_encoder, tokenizer, build_scheduler(cfg.model.schedule), None, cfg.pixel_unshuffle,
                    cfg.data.image_size)


def main(argv: list[str] | None = None) -> Path:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--config" not in argv and not any(a.startswith("--config=") for a in argv) and "--resume" not in argv:
        argv = ["--config", str(HERE / "configs" / "cpu.yaml"), *argv]  # no arguments: the CPU default
    parser = build_parser(TrainConfig, __doc__)
    cfg, args = parse_args(TrainConfig, argv, parser=parser, smoke=SMOKE)
    if args.resume:
        run = RunDir.open(args.resume)
        cfg = run.read_config(TrainConfig)
    else:
        run = RunDir.create(args.out or HERE / "runs", "smoke" if args.smoke else "t2i")
        run.write_config(cfg, "conddiff", "torch", "diffusers", "transformers")
    seed_everything(cfg.seed, args.deterministic)
    torch.set_num_threads(max(1, int(__import__("os").environ.get("OMP_NUM_THREADS", torch.get_num_threads()))))
    device = select_device(cfg.device)

    data = CaptionedImageFolder(cfg.data_root, cfg.data, cfg.seed) if cfg.data_root else ShapesStream(cfg.data,
                                                                                                     cfg.seed)
    pipe = build_pipeline(cfg).to(device)
    if cfg.init_from and not args.resume:
        init_weights(pipe, cfg.init_from if Path(cfg.init_from).is_absolute() else str(HERE / cfg.init_from))
    unet, text_encoder = pipe.unet.train(), pipe.text_encoder.train()
    ema_unet, ema_text = copy.deepcopy(unet).eval(), copy.deepcopy(text_encoder).eval()
    params = list(unet.parameters()) + list(text_encoder.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, cfg))
    abar = pipe.scheduler.alphas_cumprod.to(device)
    T = cfg.model.schedule.num_train_timesteps
    modules = {"unet": unet, "text_encoder": text_encoder, "ema_unet": ema_unet, "ema_text_encoder": ema_text}

    start = 0
    if args.resume:
        state = run.load_checkpoint("last", modules, optimizers={"opt": opt, "sched": sched})
        start = state["step"]
        run.rewind_metrics(start)
        run.log(f"resumed {run.path} at step {start}", quiet=args.quiet)
    run.log(f"UNet {count_parameters(unet):,} params, text encoder {count_parameters(text_encoder):,} params, "
            f"device {device}, steps {cfg.steps}, batch {cfg.batch_size}", quiet=args.quiet)

    t0, loss_sum, n_sum = time.time(), 0.0, 0
    for step in progress(range(start, cfg.steps), total=cfg.steps - start, desc="train", quiet=args.quiet):
        x0, captions = data.batch(step, cfg.batch_size)
        x0 = x0.to(device)
        g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)  # per-step noise: resumable exactly
        t = torch.randint(0, T, (cfg.batch_size,), generator=g).to(device)
        eps = torch.randn(x0.shape, generator=g).to(device)
        x_t = add_noise(x0, eps, abar[t])
        emb = text_encoder(tokenize(pipe.tokenizer, captions, device))[0]
        loss = ddpm_loss(pipe.eps(x_t, t, emb), eps, abar[t], cfg.min_snr_gamma)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        opt.step()
        sched.step()
        decay = min(cfg.ema_decay, (1 + step) / (10 + step))
        ema_update(ema_unet, unet, decay)
        ema_update(ema_text, text_encoder, decay)
        loss_sum, n_sum = loss_sum + loss.item(), n_sum + 1
        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps:
            run.log_metrics(step=step + 1, loss=loss_sum / n_sum, lr=sched.get_last_lr()[0],
                            s_per_step=(time.time() - t0) / n_sum)
            run.log(f"step {step + 1}/{cfg.steps} loss {loss_sum / n_sum:.4f} "
                    f"{(time.time() - t0) / n_sum:.2f} s/step", quiet=True)
            t0, loss_sum, n_sum = time.time(), 0.0, 0
        if (step + 1) % cfg.ckpt_every == 0 or step + 1 == cfg.steps:
            run.save_checkpoint("last", modules, optimizers={"opt": opt, "sched": sched}, state={"step": step + 1})
            save_ema_pipeline(pipe, ema_unet, ema_text, run.path / "pipeline")

    final = run.read_metrics()[-1]["loss"] if run.read_metrics() else float("nan")
    summary = {"final_loss": final, "steps": cfg.steps}
    if cfg.eval_samples > 0:
        from conddiff.evaluate import prompt_following_score  # the judge and the sampler

        ema_pipe = Pipeline(ema_unet, ema_text, pipe.tokenizer, pipe.scheduler, None, pipe.pixel_unshuffle,
                            pipe.image_size).eval()
        summary.update(prompt_following_score(ema_pipe, cfg.judge, cfg.eval_samples, cfg.eval_cfg_scale,
                                              cfg.eval_steps, cfg.seed, cfg.data))
    run.write_json("train_summary.json", summary)
    run.log(f"run folder: {run.path}", quiet=args.quiet)
    headline = ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in summary.items())
    run.log(f"headline: {headline}", quiet=args.quiet)
    return run.path


def init_weights(pipe: Pipeline, folder: str) -> None:
    """Copy the weights of a saved base model into ``pipe`` (same architecture). A tensor whose shape differs only
    in its first dimension (the token embedding after the vocabulary grew) has its common rows copied."""
    from conddiff.pipeline import load_pipeline

    src = load_pipeline(folder, "cpu")
    for dst_module, src_module in ((pipe.unet, src.unet), (pipe.text_encoder, src.text_encoder)):
        own, theirs = dst_module.state_dict(), src_module.state_dict()
        if set(own) != set(theirs):
            raise ValueError(f"init_from={folder}: architecture differs (parameters {sorted(set(own) ^ set(theirs))[:4]})")
        with torch.no_grad():
            for k, v in own.items():
                w = theirs[k]
                if w.shape == v.shape:
                    v.copy_(w)
                elif w.shape[1:] == v.shape[1:] and w.shape[0] <= v.shape[0]:
                    v[: w.shape[0]].copy_(w)
                else:
                    raise ValueError(f"init_from={folder}: {k} has shape {tuple(w.shape)}, expected {tuple(v.shape)}")


def save_ema_pipeline(pipe: Pipeline, ema_unet, ema_text, path: Path) -> None:
    """Write the EMA weights in diffusers' folder layout (what load_pipeline reads)."""
    Pipeline(ema_unet, ema_text, pipe.tokenizer, pipe.scheduler, None, pipe.pixel_unshuffle,
             pipe.image_size).save(path)


if __name__ == "__main__":
    main()
