"""Train NL-RAN (or an ablation / baseline) to classify chest CT volumes as COVID-19 / CP / normal.

    uv run train.py                                  # offline default: configs/cpu.yaml, phantom, CPU
    uv run train.py --smoke                          # seconds (tests)
    uv run train.py arch=resnet3d                    # a baseline under the same budget
    uv run train.py --config configs/paper.yaml --data-root /data/CC-CCII   # the paper's setting
    uv run train.py --resume runs/<run>              # continue a killed run from its last checkpoint

The loop (cross-entropy, Adam, one validation pass per epoch) keeps the checkpoint with the best
validation macro AUC as ``best`` and the latest as ``last``, then reports the test split of ``best``
(model selection on the validation split only).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from nlran.config import Config
from nlran.data import CCCCIIRoot, build_splits
from nlran.engine import build_model, classification_metrics, count_parameters, predict
from shared.runs import UsageError, entrypoint, guard_finite, progress, start

PROJECT = Path(__file__).resolve().parents[2]
SMOKE = {"volume_size": [16, 16, 16], "widths": [4, 8, 8, 16, 16], "baseline_widths": [4, 8, 8, 16],
         "baseline_layers": [1, 1, 1, 1], "baseline_stem_width": 4, "split_sizes": [24, 6, 12], "epochs": 3,
         "batch_size": 4, "latency_runs": 2}


def classification_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over the three classes (the paper trains end to end for the class label)."""
    return F.cross_entropy(logits, labels)


def check_inputs(cfg: Config, args) -> None:
    """Validate the dataset before a run folder exists: CC-CCII needs a root in its official layout."""
    if cfg.dataset == "ccccii":
        if not cfg.data_root:
            raise UsageError("dataset=ccccii reads CC-CCII from --data-root; none given (expected layout: "
                             "<root>/NCP|CP|Normal/<patient_id>/<scan_id>/<slice>.png, see the README)")
        CCCCIIRoot(cfg.data_root).scans()  # FileNotFoundError naming the path and the layout


def train_one_epoch(model, loader, optimizer, device, *, epoch: int, quiet: bool, desc: str
                    ) -> tuple[float, int, float]:
    """One pass of cross-entropy training; returns the mean loss, the number of steps and their total
    wall time in seconds (forward, backward and optimiser step only: the step time the README reports)."""
    model.train()
    total, count, steps, seconds = 0.0, 0, 0, 0.0
    for x, y in progress(loader, desc=desc, quiet=quiet):
        start_time = time.perf_counter()
        x, y = x.to(device), y.to(device)
        loss = classification_loss(model(x), y)
        guard_finite(f"{steps + 1} of epoch {epoch}", loss=loss)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), float("inf"))
        guard_finite(f"{steps + 1} of epoch {epoch}", grad_norm=grad_norm)
        optimizer.step()
        total += loss.item() * len(y)
        seconds += time.perf_counter() - start_time
        count += len(y)
        steps += 1
    return total / max(count, 1), steps, seconds


@entrypoint
def main(argv: list[str] | None = None) -> dict:
    s = start(Config, argv, tag=lambda c: f"{c.arch}-{c.dataset}", default_config=PROJECT / "configs" / "cpu.yaml",
              smoke=SMOKE, description=__doc__.split("\n\n")[0], uses_data_root=lambda c: c.dataset == "ccccii",
              data_root_hint="dataset=ccccii (configs/paper.yaml)", check=check_inputs, packages=("nlran", "monai"))
    cfg, run, device = s.cfg, s.run, s.device

    # --- data and model ---------------------------------------------------------------------------------
    splits = build_splits(cfg)
    model = build_model(cfg).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sizes = {k: len(v) for k, v in splits.items()}
    s.log(f"{cfg.arch}: {count_parameters(model):,} parameters; data {cfg.dataset} {sizes} at "
          f"{tuple(cfg.volume_size)}; device {device}, {torch.get_num_threads()} thread(s)")

    start_epoch, best_auc = 0, -math.inf
    if s.resumed and run.has_checkpoint("last"):
        state = run.load_checkpoint("last", {"model": model}, optimizers={"optimizer": optimizer})
        start_epoch, best_auc = state["epoch"], state["best_auc"]
        run.rewind_metrics(start_epoch, key="epoch")
        s.log(f"resumed after epoch {start_epoch}")

    # --- training -------------------------------------------------------------------------------------------
    for epoch in range(start_epoch, cfg.epochs):
        order = torch.Generator().manual_seed(cfg.seed * 10_000 + epoch)  # same batches after a resume
        loader = DataLoader(splits["train"], batch_size=cfg.batch_size, shuffle=True, generator=order,
                            num_workers=cfg.num_workers, drop_last=len(splits["train"]) > cfg.batch_size)
        train_loss, steps, seconds = train_one_epoch(model, loader, optimizer, device, epoch=epoch + 1,
                                                     quiet=s.args.quiet, desc=f"epoch {epoch + 1}/{cfg.epochs}")
        probs, labels = predict(model, splits["val"], device, cfg.batch_size)
        val = classification_metrics(labels, probs)
        val_loss = float(F.nll_loss(torch.log(torch.as_tensor(probs).clamp_min(1e-12)), torch.as_tensor(labels)))
        run.log_metrics(epoch=epoch + 1, train_steps=steps, train_seconds=seconds, train_loss=train_loss,
                        val_loss=val_loss, val_accuracy=val["accuracy"], val_auc_macro=val["auc_macro"],
                        val_f1_macro=val["f1_macro"])
        s.log(f"epoch {epoch + 1}/{cfg.epochs}: train loss {train_loss:.4f}  val loss {val_loss:.4f}  "
              f"acc {val['accuracy']:.3f}  AUC {val['auc_macro']:.4f}  F1 {val['f1_macro']:.4f}")
        score = val["auc_macro"] if not math.isnan(val["auc_macro"]) else val["accuracy"]
        if score > best_auc:
            best_auc = score
            run.save_checkpoint("best", {"model": model}, state={"step": epoch + 1, "epoch": epoch + 1, "val": val})
        run.save_checkpoint("last", {"model": model}, optimizers={"optimizer": optimizer},
                            state={"step": epoch + 1, "epoch": epoch + 1, "best_auc": best_auc})

    # --- test the best checkpoint (chosen on the validation split) ----------------------------------------
    best_state = run.load_checkpoint("best", {"model": model}, restore_rng=False)
    probs, labels = predict(model, splits["test"], device, cfg.batch_size)
    test = classification_metrics(labels, probs)
    run.finish({"best_epoch": best_state["epoch"], "val": best_state["val"], "test": test})
    s.log(f"test (best epoch {best_state['epoch']}): AUC {test['auc_macro']:.4f}  precision "
          f"{test['precision_macro']:.4f}  F1 {test['f1_macro']:.4f}  accuracy {test['accuracy']:.4f}")
    s.log(f"run folder: {run.path}")
    s.log(f"headline: test macro AUC {test['auc_macro']:.4f}, macro F1 {test['f1_macro']:.4f}")
    return {"run": run.path, "test": test, "best_epoch": best_state["epoch"]}


if __name__ == "__main__":
    main()
