"""Train NL-RAN (or an ablation / baseline) to classify chest CT volumes as COVID-19 / CP / normal.

    uv run train.py                                  # offline default: configs/cpu.yaml, phantom, CPU, ~3-7 min
    uv run train.py --smoke                          # seconds (tests)
    uv run train.py arch=resnet3d                    # a baseline under the same budget
    uv run train.py --config configs/paper.yaml --data-root /data/CC-CCII   # the paper's setting
    uv run train.py --resume runs/<run>              # continue a killed run from its last checkpoint

The loop (cross-entropy, Adam, one validation pass per epoch) keeps the checkpoint with the best
validation macro AUC as ``best`` and the latest as ``last``, then reports the test split of ``best``.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from nlran.config import Config
from nlran.data import build_splits
from nlran.engine import build_model, classification_metrics, count_parameters, predict
from shared.runs import RunDir, parse_args, progress, seed_everything, select_device
from shared.runs.cli import build_parser

HERE = Path(__file__).resolve().parent
DEFAULT_CONFIG = HERE / "configs" / "cpu.yaml"
SMOKE = {"volume_size": [16, 16, 16], "widths": [4, 8, 8, 16, 16], "baseline_widths": [4, 8, 8, 16],
         "baseline_layers": [1, 1, 1, 1], "n_volumes": 36, "epochs": 2, "batch_size": 4, "latency_runs": 2}


def set_threads(cfg: Config) -> None:
    """Honour ``num_threads`` or ``$OMP_NUM_THREADS`` (the machine is shared)."""
    n = cfg.num_threads or int(os.environ.get("OMP_NUM_THREADS", "0") or 0)
    if n > 0:
        torch.set_num_threads(n)


def train_one_epoch(model, loader, optimizer, device, *, quiet: bool, desc: str) -> tuple[float, int, float]:
    """One pass of cross-entropy training; returns the mean loss, the number of steps and their total
    wall time in seconds (forward, backward and optimiser step only: the step time the README reports)."""
    model.train()
    total, count, steps, seconds = 0.0, 0, 0, 0.0
    for x, y in progress(loader, desc=desc, quiet=quiet):
        start = time.perf_counter()
        x, y = x.to(device), y.to(device)
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(y)
        seconds += time.perf_counter() - start
        count += len(y)
        steps += 1
    return total / max(count, 1), steps, seconds


def main(argv: list[str] | None = None) -> dict:
    parser = build_parser(Config, __doc__.split("\n\n")[0] + " Without --config, configs/cpu.yaml is applied "
                          "on top of the defaults listed below (the paper's recipe).")
    parser.set_defaults(config=DEFAULT_CONFIG)
    cfg, args = parse_args(Config, argv, parser=parser, smoke=SMOKE)

    # --- run folder (new, or the one being resumed with its own config) -------------------------------
    if args.resume is not None:
        run = RunDir.open(args.resume)
        cfg = run.read_config(Config)
        run.log(f"resuming {run.path} with its saved config", quiet=args.quiet)
    else:
        run = RunDir.create(args.out, tag=f"{cfg.arch}-{cfg.dataset}" + ("-smoke" if args.smoke else ""))
        run.write_config(cfg, "nlran", "monai")
    set_threads(cfg)
    seed_everything(cfg.seed, deterministic=args.deterministic)
    device = select_device(cfg.device)

    # --- data and model ---------------------------------------------------------------------------------
    splits = build_splits(cfg)
    model = build_model(cfg).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sizes = {k: len(v) for k, v in splits.items()}
    run.log(f"{cfg.arch}: {count_parameters(model):,} parameters; data {cfg.dataset} {sizes} "
            f"at {tuple(cfg.volume_size)}; device {device}", quiet=args.quiet)

    start_epoch, best_auc = 0, -math.inf
    if args.resume is not None:
        state = run.load_checkpoint("last", {"model": model}, optimizers={"optimizer": optimizer})
        start_epoch, best_auc = state["epoch"], state["best_auc"]
        run.rewind_metrics(start_epoch, key="epoch")

    # --- training -------------------------------------------------------------------------------------------
    for epoch in range(start_epoch, cfg.epochs):
        order = torch.Generator().manual_seed(cfg.seed * 10_000 + epoch)  # same batches after a resume
        loader = DataLoader(splits["train"], batch_size=cfg.batch_size, shuffle=True, generator=order,
                            num_workers=cfg.num_workers, drop_last=len(splits["train"]) > cfg.batch_size)
        train_loss, steps, seconds = train_one_epoch(model, loader, optimizer, device, quiet=args.quiet,
                                     desc=f"epoch {epoch + 1}/{cfg.epochs}")
        probs, labels = predict(model, splits["val"], device, cfg.batch_size)
        val = classification_metrics(labels, probs)
        val_loss = float(F.nll_loss(torch.log(torch.as_tensor(probs).clamp_min(1e-12)), torch.as_tensor(labels)))
        run.log_metrics(epoch=epoch + 1, train_steps=steps, train_seconds=seconds, train_loss=train_loss,
                        val_loss=val_loss, val_accuracy=val["accuracy"],
                        val_auc_macro=val["auc_macro"], val_f1_macro=val["f1_macro"])
        run.log(f"epoch {epoch + 1}/{cfg.epochs}: train loss {train_loss:.4f}  val loss {val_loss:.4f}  "
                f"acc {val['accuracy']:.3f}  AUC {val['auc_macro']:.4f}  F1 {val['f1_macro']:.4f}", quiet=args.quiet)
        score = val["auc_macro"] if not math.isnan(val["auc_macro"]) else val["accuracy"]
        if score > best_auc:
            best_auc = score
            run.save_checkpoint("best", {"model": model}, state={"epoch": epoch + 1, "val": val})
        run.save_checkpoint("last", {"model": model}, optimizers={"optimizer": optimizer},
                            state={"epoch": epoch + 1, "best_auc": best_auc})

    # --- test the best checkpoint -----------------------------------------------------------------------------
    best_state = run.load_checkpoint("best", {"model": model}, restore_rng=False)
    probs, labels = predict(model, splits["test"], device, cfg.batch_size)
    test = classification_metrics(labels, probs)
    run.write_json("train_summary.json", {"best_epoch": best_state["epoch"], "val": best_state["val"], "test": test})
    run.log(f"test (best epoch {best_state['epoch']}): AUC {test['auc_macro']:.4f}  precision "
            f"{test['precision_macro']:.4f}  F1 {test['f1_macro']:.4f}  accuracy {test['accuracy']:.4f}",
            quiet=args.quiet)
    print(f"run folder: {run.path}\nheadline: test macro AUC {test['auc_macro']:.4f}, macro F1 {test['f1_macro']:.4f}")
    return {"run": run.path, "test": test, "best_epoch": best_state["epoch"]}


if __name__ == "__main__":
    main()
