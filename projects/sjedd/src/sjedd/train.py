"""Train SJEDD (joint image-text embedding + bi-level task weighting) or its baselines.

    uv run train.py                                   # offline default (configs/cpu.yaml): synthetic faces, CNN image
                                                      # tower in the joint embedding, Auto-lambda; a few minutes on CPU
    uv run train.py method=fixed                      # joint embedding, fixed task weights (ablation)
    uv run train.py method=binary                     # binary-only classifier on the same image tower (baseline)
    uv run train.py --config configs/paper.yaml --data-root /data/ffpp_lists clip=/weights/clip-vit-base-patch32
    uv run train.py --resume runs/<run>               # continue a killed run from its last finished epoch
    uv run train.py --smoke                           # seconds, for tests

Start, resume, checkpoints and the divergence guard follow ``shared/RUNS.md``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from shared.runs import entrypoint, guard_finite, progress, start
from sjedd.autolambda import AutoLambda
from sjedd.config import Config
from sjedd.data import augment
from sjedd.evaluate import evaluate_splits, headline
from sjedd.training import batch_losses, batches, build_model, check_config, load_data

PROJECT = Path(__file__).resolve().parents[2]
SMOKE = {"epochs": 2, "train_videos": 12, "test_videos": 6, "frames_per_video": 2, "batch_size": 8,
         "tiny_width": 32, "tiny_layers": 1, "face_size": 32, "tiny_patch": 8, "tiny_init": None,
         "cnn_widths": (8, 16), "meta_every": 1}


@entrypoint
def main(argv: list[str] | None = None) -> dict:
    s = start(Config, argv, tag=lambda c: f"sjedd-{c.method}", default_config=PROJECT / "configs" / "cpu.yaml",
              smoke=SMOKE, uses_data_root=lambda c: c.dataset == "lists",
              data_root_hint="dataset=lists (configs/paper.yaml)", check=check_config,
              packages=("sjedd", "transformers"), description=__doc__.split("\n")[0])
    cfg, run, device, quiet = s.cfg, s.run, s.device, s.args.quiet

    # ---- data and model ----------------------------------------------------------------------------------------
    data = load_data(cfg)
    train = data["train"]
    s.log(f"train: {len(train)} frames ({train.is_fake.mean():.0%} fake); tests: "
          + ", ".join(f"{k}={len(v)}" for k, v in data.items() if k != "train"))
    model = build_model(cfg).to(device)
    optim = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(optim, T_max=cfg.cosine_t_max)
    loss_fn = lambda m, b: batch_losses(m, b, cfg.method)  # noqa: E731
    autol = AutoLambda(model, loss_fn, init=cfg.autol_init, lr=cfg.autol_lr) if cfg.method == "sjedd" else None
    fixed = torch.tensor(cfg.fixed_weights if cfg.method == "fixed" else (1.0,), dtype=torch.float32, device=device)
    tower = "CLIP " + cfg.clip if cfg.clip else "tiny CLIP"
    tower += " text tower + CNN image tower" if cfg.image_tower == "cnn" else ""
    s.log(f"model: {type(model).__name__} ({tower}), {sum(p.numel() for p in model.parameters()):,} parameters")

    gen = torch.Generator().manual_seed(cfg.seed)          # training order
    val_gen = torch.Generator().manual_seed(cfg.seed + 1)  # the second stream the official code uses for lambda
    aug_rng = np.random.default_rng(cfg.seed)
    start_epoch, step = 0, 0
    modules = {"model": model}
    optimizers = {"optim": optim, "sched": sched} | ({"meta": autol.meta_optim} if autol else {})
    if s.resumed and run.has_checkpoint("last"):
        state = run.load_checkpoint("last", modules, optimizers=optimizers)
        start_epoch, step = state["epoch"], state["step"]
        gen.set_state(torch.tensor(state["gen"], dtype=torch.uint8))
        val_gen.set_state(torch.tensor(state["val_gen"], dtype=torch.uint8))
        aug_rng.bit_generator.state = state["aug_rng"]
        if autol:
            autol.meta_weights.data.copy_(torch.tensor(state["lambda"]))
        run.rewind_metrics(step)
        s.log(f"resumed from epoch {start_epoch} (step {step})")

    def make_batch(index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        images = train.images[index]
        if cfg.aug:
            images = augment(images, cfg.aug_prob, aug_rng)
        return images.to(device), train.labels[index].to(device)

    # ---- training ------------------------------------------------------------------------------------------------
    t0 = time.time()
    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        val_stream = batches(train, cfg.batch_size, val_gen)  # a fresh permutation each epoch (resumable)
        bar = progress(list(batches(train, cfg.batch_size, gen)), desc=f"epoch {epoch + 1}/{cfg.epochs}", quiet=quiet)
        for index in bar:
            batch = make_batch(index)
            step += 1
            if autol is not None and (step - 1) % cfg.meta_every == 0:  # upper level: a meta step on lambda (III-E)
                hypergrad = autol.step(batch, make_batch(next(val_stream)), alpha=optim.param_groups[0]["lr"],
                                       model_optim=optim)
                guard_finite(step, hypergradient=hypergrad, task_weights=autol.meta_weights.detach())
            weights = autol.meta_weights.detach().to(device) if autol is not None else fixed
            losses = batch_losses(model, batch, cfg.method)   # lower level: the weighted task losses
            loss = (weights * losses).sum()
            guard_finite(step, loss=loss)
            optim.zero_grad()
            loss.backward()
            optim.step()
            row = {"step": step, "epoch": epoch + 1, "loss": loss.item(), "lr": optim.param_groups[0]["lr"]}
            row |= {f"L{k + 1}": v for k, v in enumerate(losses.tolist())}
            if autol is not None:  # lambda after this step's meta update (the weights this step trained with)
                row |= {f"lambda{k + 1}": v for k, v in enumerate(autol.meta_weights.tolist())}
            run.log_metrics(**row)
            bar.set_postfix(loss=f"{loss.item():.4f}")
        sched.step()
        state = {"epoch": epoch + 1, "step": step, "gen": gen.get_state().tolist(),
                 "val_gen": val_gen.get_state().tolist(), "aug_rng": aug_rng.bit_generator.state,
                 "lambda": autol.meta_weights.tolist() if autol else None}
        run.save_checkpoint("last", modules, optimizers=optimizers, state=state)
        lam = f"  lambda=[{', '.join(f'{v:.3f}' for v in autol.meta_weights.tolist())}]" if autol else ""
        s.log(f"epoch {epoch + 1}: loss {loss.item():.4f}{lam}  ({time.time() - t0:.0f}s)")

    # ---- evaluation ----------------------------------------------------------------------------------------------
    tests = {k: v for k, v in data.items() if k != "train"}
    results = evaluate_splits(model, tests, cfg.method, device, cfg.batch_size, quiet=quiet)
    results["train_time_s"] = round(time.time() - t0, 1)
    run.finish(results)
    s.log(f"run folder: {run.path}")
    s.log(headline(results))
    return {"run": run.path, **results}


