"""Train DeFI-Net (or the U-Net baseline) for inpainting localisation.

    uv run train.py                                   # offline default (configs/cpu.yaml), CPU, ~10 min
    uv run train.py --smoke                           # seconds; what the tests run
    uv run train.py --config configs/paper.yaml --data-root /data/IID   # the paper's recipe on a real dataset
    uv run train.py model.arch=unet                   # the encoder-decoder baseline, same recipe
    uv run train.py --resume runs/<run>               # continue a killed run

The recipe is the official one (``train.py`` of github.com/Boombb/DeFI-Net_Inpainting): Adam, lr 2e-4,
gradient values clamped to [-0.5, 0.5], ReduceLROnPlateau(mode="max", patience 5, factor 0.5) on the
validation pixel AUC, the best-AUC checkpoint kept. Loss: 5 x structure loss + 1 x boundary loss.
After training, the best checkpoint is scored on every test split and the headline metric is printed.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from definet.config import TrainConfig
from definet.data import PairDataset, folder_splits, offline_splits
from definet.evaluate import evaluate
from definet.losses import definet_loss
from definet.model import build_model, count_parameters
from shared.runs import RunDir, parse_args, progress, seed_everything, select_device
from shared.runs.cli import apply_overrides, build_parser

CPU_CONFIG = Path(__file__).resolve().parent / "configs" / "cpu.yaml"
SMOKE = {
    "epochs": 2, "batch_size": 4,
    "data": {"image_size": 32, "n_train": 8, "n_val": 4, "n_test_per_method": 3},
    "model": {"stem_channels": 4, "stage1_planes": 2, "channels": [4, 8, 8, 8], "fpn_out": 8,
              "unet_widths": [4, 8, 8, 8]},
}


def make_parser():
    parser = build_parser(TrainConfig, "Train DeFI-Net (or the U-Net baseline) for inpainting localisation.")
    parser.set_defaults(config=CPU_CONFIG)
    parser.add_argument("--tag", default=None, help="run-folder tag (default: the architecture)")
    return parser


def make_splits(cfg: TrainConfig) -> dict[str, PairDataset]:
    """The real dataset when a data root is given (or data.source=folder), else the offline generator."""
    if cfg.data_root is not None or cfg.data.source == "folder":
        return folder_splits(cfg.data_root, cfg.data, cfg.seed)
    return offline_splits(cfg.data, cfg.seed)


def clip_gradient(model: torch.nn.Module, clip: float) -> None:
    """Official ``clip_gradient``: clamp every gradient element to [-clip, clip] (value clipping)."""
    for p in model.parameters():
        if p.grad is not None:
            p.grad.clamp_(-clip, clip)


def train_one_epoch(model, loader, optimizer, cfg: TrainConfig, device, *, desc: str, quiet: bool) -> dict[str, float]:
    """One pass over the training loader; returns the mean of each loss term."""
    model.train()
    totals = {"loss": 0.0, "seg": 0.0, "edge": 0.0}
    for image, mask in progress(loader, desc=desc, quiet=quiet, leave=False):
        image, mask = image.to(device), mask.to(device)
        edge_logits, seg_logits = model(image)
        losses = definet_loss(edge_logits, seg_logits, mask, cfg.loss)
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        clip_gradient(model, cfg.clip)
        optimizer.step()
        for key in totals:
            totals[key] += float(losses[key].detach())
    return {key: value / max(len(loader), 1) for key, value in totals.items()}


def test_all(model, splits: dict[str, PairDataset], size: int, device) -> dict[str, dict[str, float]]:
    """Official per-image metrics on every ``test/<method>`` (offline) or ``test`` (real dataset) split."""
    return {name: evaluate(model, ds.images, ds.masks, size, device)
            for name, ds in splits.items() if name.startswith("test")}


def main(argv: list[str] | None = None) -> Path:
    cfg, args = parse_args(TrainConfig, argv, parser=make_parser(), smoke=SMOKE)
    if args.resume is not None:  # a resumed run keeps its own config; key=value overrides (e.g. epochs=) apply
        run = RunDir.open(args.resume)
        cfg = apply_overrides(run.read_config(TrainConfig), dict(o.split("=", 1) for o in args.overrides))
    threads = cfg.num_threads or int(os.environ.get("OMP_NUM_THREADS", "0") or 0)
    if threads > 0:
        torch.set_num_threads(threads)
    seed_everything(cfg.seed, deterministic=args.deterministic)
    device = select_device(cfg.device)

    splits = make_splits(cfg)
    train_set, val_set = splits["train"], splits["val"]
    model = build_model(cfg.model).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", patience=cfg.plateau_patience,
                                                           factor=cfg.plateau_factor)
    start_epoch, best_auc, step = 1, -1.0, 0
    if args.resume is not None:
        state = run.load_checkpoint("last", {"model": model}, optimizers={"optimizer": optimizer,
                                                                          "scheduler": scheduler})
        start_epoch, best_auc, step = state["epoch"] + 1, state["best_auc"], state["step"]
        run.rewind_metrics(state["epoch"], key="epoch")
        run.log(f"resumed {run.path} after epoch {state['epoch']}", quiet=args.quiet)
    else:
        run = RunDir.create(args.out, args.tag or cfg.model.arch + ("" if cfg.model.use_ream else "-noream"))
        run.write_config(cfg, "definet", parameters=count_parameters(model))
        run.log(f"run folder {run.path}: {cfg.model.arch}, {count_parameters(model):,} parameters, "
                f"{len(train_set)} training / {len(val_set)} validation images at {cfg.data.image_size} px, "
                f"device {device}", quiet=args.quiet)

    t0 = time.time()
    for epoch in range(start_epoch, cfg.epochs + 1):
        train_set.epoch = epoch  # augmentation draws depend on (seed, epoch, index): resumable
        order = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
        loader = DataLoader(train_set, batch_size=cfg.batch_size, shuffle=True, drop_last=len(train_set) >= cfg.batch_size,
                            generator=order)
        losses = train_one_epoch(model, loader, optimizer, cfg, device, desc=f"epoch {epoch}", quiet=args.quiet)
        step += len(loader)
        val = evaluate(model, val_set.images, val_set.masks, cfg.data.image_size, device)
        scheduler.step(val["auc"])
        lr = optimizer.param_groups[0]["lr"]
        improved = val["auc"] > best_auc
        if improved:
            best_auc = val["auc"]
        state = {"epoch": epoch, "step": step, "best_auc": best_auc}
        if improved:
            run.save_checkpoint("best", {"model": model}, state=state)
        if epoch % cfg.save_every == 0:
            run.save_checkpoint(f"epoch{epoch:03d}", {"model": model}, state=state)
        run.save_checkpoint("last", {"model": model}, optimizers={"optimizer": optimizer, "scheduler": scheduler},
                            state=state)
        run.log_metrics(epoch=epoch, step=step, lr=lr, **losses, **{f"val_{k}": v for k, v in val.items()})
        run.log(f"epoch {epoch:3d}/{cfg.epochs}  loss {losses['loss']:.4f} (seg {losses['seg']:.4f}, edge "
                f"{losses['edge']:.4f})  val AUC {val['auc']:.4f} F1 {val['f1_macro']:.4f} IoU {val['iou']:.4f}"
                f"  lr {lr:.1e}  {time.time() - t0:.0f}s{'  *best*' if improved else ''}", quiet=args.quiet)

    run.load_checkpoint("best", {"model": model}, restore_rng=False)
    results = test_all(model, splits, cfg.data.image_size, device)
    run.write_json("test.json", {"checkpoint": "best", "best_val_auc": best_auc, "train_time_s": time.time() - t0,
                                 "splits": results})
    for name, r in results.items():
        run.log(f"{name:18s} AUC {r['auc']:.4f}  F1(macro) {r['f1_macro']:.4f}  F1(binary) {r['f1']:.4f}  "
                f"IoU {r['iou']:.4f}  ({r['n_images']} images)", quiet=args.quiet)
    mean = {k: float(np.mean([r[k] for r in results.values()])) for k in ("auc", "f1_macro", "iou")}
    print(f"run folder: {run.path}")
    print(f"headline (best checkpoint, mean over test splits): AUC {mean['auc']:.4f}  F1 {mean['f1_macro']:.4f}  "
          f"IoU {mean['iou']:.4f}")
    return run.path


if __name__ == "__main__":
    main()
