"""Train SJEDD (joint image-text embedding + bi-level task weighting) or its baselines.

    uv run train.py                                   # offline default: synthetic faces, the tiny CLIP pretrained by
                                                      # pretrain.py (pretrained/), ~2 minutes on CPU
    uv run train.py method=fixed                      # joint embedding, fixed task weights (ablation)
    uv run train.py method=binary                     # binary-only classifier on the same backbone (baseline)
    uv run train.py --config configs/paper.yaml --data-root /data/ffpp_lists clip=/weights/clip-vit-base-patch32
    uv run train.py --smoke                           # a few steps, for tests

Without ``--config`` and ``--data-root`` the offline default ``configs/cpu.yaml`` is used.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

from shared.runs import RunDir, apply_overrides, parse_args, progress, seed_everything, select_device
from sjedd.autolambda import AutoLambda
from sjedd.config import Config
from sjedd.data import augment
from sjedd.evaluate import evaluate_splits, headline
from sjedd.training import batch_losses, batches, build_model, load_data

HERE = Path(__file__).resolve().parent
SMOKE = {"epochs": 1, "train_videos": 12, "test_videos": 6, "frames_per_video": 2, "batch_size": 8,
         "tiny_width": 32, "tiny_layers": 1, "face_size": 32, "tiny_patch": 8, "tiny_init": None}


def main(argv: list[str] | None = None) -> Path:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--config" not in argv and "--data-root" not in argv and not any(a.startswith("--data-root=") for a in argv):
        argv = ["--config", str(HERE / "configs" / "cpu.yaml"), *argv]
    cfg, args = parse_args(Config, argv, description=__doc__.split("\n")[0], smoke=SMOKE)
    seed_everything(args.seed, deterministic=args.deterministic)
    device = select_device(cfg.device)

    run = RunDir.open(args.resume) if args.resume else RunDir.create(args.out, f"sjedd-{cfg.method}")
    if args.resume:  # the saved config, with this command's key=value overrides (e.g. a longer epochs=)
        cfg = apply_overrides(run.read_config(Config), dict(a.split("=", 1) for a in args.overrides))
    else:
        run.write_config(cfg, "sjedd", "transformers")
    run.log(f"run folder: {run.path}  method={cfg.method}  device={device}")

    # ---- data and model ----------------------------------------------------------------------------------------
    data = load_data(cfg)
    train = data["train"]
    run.log(f"train: {len(train)} frames ({train.is_fake.mean():.0%} fake); tests: "
            + ", ".join(f"{k}={len(v)}" for k, v in data.items() if k != "train"))
    model = build_model(cfg).to(device)
    optim = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(optim, T_max=cfg.cosine_t_max)
    loss_fn = lambda m, b: batch_losses(m, b, cfg.method)  # noqa: E731
    autol = AutoLambda(model, loss_fn, init=cfg.autol_init, lr=cfg.autol_lr) if cfg.method == "sjedd" else None
    fixed = torch.tensor(cfg.fixed_weights if cfg.method == "fixed" else (1.0,), dtype=torch.float32, device=device)
    n_params = sum(p.numel() for p in model.parameters())
    run.log(f"model: {type(model).__name__} ({'CLIP ' + cfg.clip if cfg.clip else 'tiny CLIP'}), {n_params:,} parameters")

    gen = torch.Generator().manual_seed(args.seed)          # training order
    val_gen = torch.Generator().manual_seed(args.seed + 1)  # the second stream the official code uses for lambda
    aug_rng = np.random.default_rng(args.seed)
    start_epoch, step = 0, 0
    modules = {"model": model}
    optimizers = {"optim": optim, "sched": sched} | ({"meta": autol.meta_optim} if autol else {})
    if args.resume:
        state = run.load_checkpoint("last", modules, optimizers=optimizers)
        start_epoch, step = state["epoch"], state["step"]
        gen.set_state(torch.tensor(state["gen"], dtype=torch.uint8))
        val_gen.set_state(torch.tensor(state["val_gen"], dtype=torch.uint8))
        aug_rng.bit_generator.state = state["aug_rng"]
        if autol:
            autol.meta_weights.data.copy_(torch.tensor(state["lambda"]))
        run.rewind_metrics(step)
        run.log(f"resumed from epoch {start_epoch} (step {step})")

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
        bar = progress(list(batches(train, cfg.batch_size, gen)), desc=f"epoch {epoch + 1}/{cfg.epochs}",
                       quiet=args.quiet)
        for index in bar:
            batch = make_batch(index)
            if autol is not None and step % cfg.meta_every == 0:  # upper level: a meta step on lambda (Sec. III-E)
                autol.step(batch, make_batch(next(val_stream)), alpha=optim.param_groups[0]["lr"], model_optim=optim)
            if autol is not None:
                weights = autol.meta_weights.detach().to(device)
            else:
                weights = fixed
            losses = batch_losses(model, batch, cfg.method)   # lower level: the weighted task losses
            loss = (weights * losses).sum()
            optim.zero_grad()
            loss.backward()
            optim.step()
            step += 1
            row = {"step": step, "epoch": epoch + 1, "loss": loss.item(), "lr": optim.param_groups[0]["lr"]}
            row |= {f"L{k + 1}": v for k, v in enumerate(losses.tolist())}
            if autol is not None:
                row |= {f"lambda{k + 1}": v for k, v in enumerate(autol.meta_weights.tolist())}
            run.log_metrics(**row)
            bar.set_postfix(loss=f"{loss.item():.4f}")
        sched.step()
        state = {"epoch": epoch + 1, "step": step, "gen": gen.get_state().tolist(),
                 "val_gen": val_gen.get_state().tolist(), "aug_rng": aug_rng.bit_generator.state,
                 "lambda": autol.meta_weights.tolist() if autol else None}
        run.save_checkpoint("last", modules, optimizers=optimizers, state=state)
        lam = f"  lambda={[round(v, 3) for v in autol.meta_weights.tolist()]}" if autol else ""
        run.log(f"epoch {epoch + 1}: loss {loss.item():.4f}{lam}  ({time.time() - t0:.0f}s)")

    # ---- evaluation ----------------------------------------------------------------------------------------------
    tests = {k: v for k, v in data.items() if k != "train"}
    results = evaluate_splits(model, tests, cfg.method, device, cfg.batch_size)
    results["train_time_s"] = round(time.time() - t0, 1)
    run.write_json("eval.json", results)
    run.log(f"done: {run.path}\n{headline(results)}")
    return run.path


if __name__ == "__main__":
    main()
