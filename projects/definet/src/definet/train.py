"""Train DeFI-Net (or the U-Net baseline) for inpainting localisation.

    uv run train.py                                   # offline default (configs/cpu.yaml), CPU, ~5-10 min
    uv run train.py --smoke                           # seconds; what the tests run
    uv run train.py --config configs/paper.yaml --data-root /data/IID   # the paper's recipe on a real dataset
    uv run train.py --config configs/cpu_lite0.yaml   # on the ImageNet EfficientNet-Lite0 encoder (a deviation)
    uv run train.py model.arch=unet                   # the encoder-decoder baseline, same recipe
    uv run train.py --resume runs/<run>               # continue a killed run (from its last finished epoch)

The recipe is the official one (``train.py`` of github.com/Boombb/DeFI-Net_Inpainting): Adam, lr 2e-4,
gradient values clamped to [-0.5, 0.5], ReduceLROnPlateau(mode="max", patience 5, factor 0.5) on the
validation pixel AUC, the best-AUC checkpoint kept. Loss: 5 x structure loss + 1 x boundary loss (Sec. III-E).
After training, the best checkpoint is scored on every test split (mask and edges) and the headline is printed.
Start, resume, checkpoints and the divergence guard follow ``shared/RUNS.md``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from definet.config import TrainConfig
from definet.data import InpaintingFolder, PairDataset, folder_splits, offline_splits
from definet.evaluate import evaluate
from definet.losses import definet_loss
from definet.model import build_model, count_parameters
from shared.runs import UsageError, build_parser, entrypoint, guard_finite, progress, start

PROJECT = Path(__file__).resolve().parents[2]
CPU_CONFIG = PROJECT / "configs" / "cpu.yaml"
SMOKE = {
    "epochs": 2, "batch_size": 4,
    "data": {"image_size": 32, "n_train": 8, "n_val": 4, "n_test_per_method": 3},
    "model": {"stem_channels": 4, "stage1_planes": 2, "channels": [4, 8, 8, 8], "fpn_out": 8,
              "unet_widths": [4, 8, 8, 8], "unet_decoder_widths": [8, 8, 8]},
}


def make_parser():
    parser = build_parser(TrainConfig, "Train DeFI-Net (or the U-Net baseline) for inpainting localisation. "
                                       "Default config: configs/cpu.yaml (offline data, CPU).")
    parser.add_argument("--tag", default=None, help="run-folder tag (default: the architecture)")
    return parser


def check_config(cfg: TrainConfig, args) -> None:
    """Everything that would fail later, checked before the run folder exists (``shared.runs.start``)."""
    multiple = 16 if cfg.model.encoder == "lite0" else 8
    if cfg.data.image_size % multiple:
        raise UsageError(f"data.image_size must be a multiple of {multiple} for this model, got {cfg.data.image_size}")
    if cfg.model.pretrained and not Path(cfg.model.pretrained).is_file():
        raise UsageError(f"model.pretrained '{cfg.model.pretrained}' does not exist; expected the ImageNet HRNet "
                         "checkpoint hrnet_w18_small_v2.pth (see the README)")
    if cfg.model.encoder == "lite0" and cfg.model.encoder_pretrained:
        from shared.data.pretrained import lite0_weights_path

        try:
            lite0_weights_path()
        except ImportError as err:
            raise UsageError(str(err)) from err
    if cfg.data.source == "folder":  # the layout and the image/mask pairing (files are read later)
        folder = InpaintingFolder(cfg.data_root)
        folder.pairs("train"), folder.pairs("test")


def make_splits(cfg: TrainConfig) -> dict[str, PairDataset]:
    """The real dataset when data.source is "folder" (``--data-root``), else the offline generator."""
    if cfg.data.source == "folder":
        return folder_splits(cfg.data_root, cfg.data, cfg.seed)
    return offline_splits(cfg.data, cfg.seed)


def clip_gradient(model: torch.nn.Module, clip: float) -> None:
    """Official ``clip_gradient``: clamp every gradient element to [-clip, clip] (value clipping)."""
    for p in model.parameters():
        if p.grad is not None:
            p.grad.clamp_(-clip, clip)


def train_one_epoch(model, loader, optimizer, cfg: TrainConfig, device, *, step: int, desc: str, quiet: bool
                    ) -> dict[str, float]:
    """One pass over the training loader (``step``: optimizer steps before it); returns each loss term's mean."""
    model.train()
    totals = {"loss": 0.0, "seg": 0.0, "edge": 0.0}
    for image, mask in progress(loader, desc=desc, quiet=quiet, leave=False):
        step += 1
        image, mask = image.to(device), mask.to(device)
        edge_logits, seg_logits = model(image)
        losses = definet_loss(edge_logits, seg_logits, mask, cfg.loss)
        guard_finite(step, loss=losses["loss"])
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        clip_gradient(model, cfg.clip)
        optimizer.step()
        for key in totals:
            totals[key] += float(losses[key].detach())
    return {key: value / max(len(loader), 1) for key, value in totals.items()}


def test_all(model, splits: dict[str, PairDataset], size: int, device) -> dict[str, dict[str, float]]:
    """Official per-image metrics (mask and edges) on every ``test/<method>`` (offline) or ``test`` (real) split."""
    return {name: evaluate(model, ds.images, ds.masks, size, device, edges=True)
            for name, ds in splits.items() if name.startswith("test")}


@entrypoint
def main(argv: list[str] | None = None) -> Path:
    tag = make_parser().parse_known_args(argv)[0].tag  # --tag names the run folder (reproduce.py uses it)
    s = start(TrainConfig, argv, tag=tag or (lambda c: c.model.arch + ("" if c.model.use_ream else "-noream")),
              default_config=CPU_CONFIG, smoke=SMOKE, parser=make_parser(),
              uses_data_root=lambda c: c.data.source == "folder",
              data_root_hint="data.source=folder (configs/paper.yaml)", check=check_config, packages=("definet",))
    cfg, run, device, quiet = s.cfg, s.run, s.device, s.args.quiet

    splits = make_splits(cfg)
    train_set, val_set = splits["train"], splits["val"]
    model = build_model(cfg.model).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", patience=cfg.plateau_patience,
                                                           factor=cfg.plateau_factor)
    start_epoch, best_auc, step, train_time = 1, -1.0, 0, 0.0
    if s.resumed and run.has_checkpoint("last"):
        state = run.load_checkpoint("last", {"model": model}, optimizers={"optimizer": optimizer,
                                                                          "scheduler": scheduler})
        start_epoch, best_auc, step = state["epoch"] + 1, state["best_auc"], state["step"]
        train_time = state.get("train_time_s", 0.0)
        run.rewind_metrics(state["epoch"], key="epoch")
        s.log(f"resumed {run.path} after epoch {state['epoch']}")
    else:
        s.log(f"run folder {run.path}: {cfg.model.arch}, {count_parameters(model):,} parameters, "
              f"{len(train_set)} training / {len(val_set)} validation images at {cfg.data.image_size} px, "
              f"device {device}")

    t0 = time.time() - train_time
    for epoch in range(start_epoch, cfg.epochs + 1):
        train_set.epoch = epoch  # augmentation draws depend on (seed, epoch, index): resumable
        order = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
        loader = DataLoader(train_set, batch_size=cfg.batch_size, shuffle=True,
                            drop_last=len(train_set) >= cfg.batch_size, generator=order)
        losses = train_one_epoch(model, loader, optimizer, cfg, device, step=step, desc=f"epoch {epoch}", quiet=quiet)
        step += len(loader)
        val = evaluate(model, val_set.images, val_set.masks, cfg.data.image_size, device)
        scheduler.step(val["auc"])
        lr = optimizer.param_groups[0]["lr"]
        improved = val["auc"] > best_auc
        if improved:
            best_auc = val["auc"]
        run.log_metrics(epoch=epoch, step=step, lr=lr, **losses, **{f"val_{k}": v for k, v in val.items()})
        state = {"epoch": epoch, "step": step, "best_auc": best_auc, "train_time_s": time.time() - t0}
        if improved:
            run.save_checkpoint("best", {"model": model}, state=state)
        if epoch % cfg.save_every == 0:
            run.save_checkpoint(f"epoch{epoch:03d}", {"model": model}, state=state)
        run.save_checkpoint("last", {"model": model}, optimizers={"optimizer": optimizer, "scheduler": scheduler},
                            state=state)
        s.log(f"epoch {epoch:3d}/{cfg.epochs}  loss {losses['loss']:.4f} (seg {losses['seg']:.4f}, edge "
              f"{losses['edge']:.4f})  val AUC {val['auc']:.4f} F1 {val['f1_macro']:.4f} IoU {val['iou']:.4f}"
              f"  lr {lr:.1e}  {time.time() - t0:.0f}s{'  *best*' if improved else ''}")

    train_time = time.time() - t0
    run.load_checkpoint("best", {"model": model}, restore_rng=False)
    results = test_all(model, splits, cfg.data.image_size, device)
    for name, r in results.items():
        s.log(f"{name:18s} AUC {r['auc']:.4f}  F1(macro) {r['f1_macro']:.4f}  F1(binary) {r['f1']:.4f}  "
              f"IoU {r['iou']:.4f}  ({r['n_images']} images)")
    mean = {k: float(np.mean([r[k] for r in results.values()])) for k in ("auc", "f1_macro", "iou")}
    run.finish({"checkpoint": "best", "best_val_auc": best_auc, "train_time_s": train_time,
                "parameters": count_parameters(model), "headline": mean, "splits": results})
    s.log(f"run folder: {run.path}")
    s.log(f"headline (best checkpoint, mean over test splits): AUC {mean['auc']:.4f}  F1 {mean['f1_macro']:.4f}  "
          f"IoU {mean['iou']:.4f}")
    return run.path
