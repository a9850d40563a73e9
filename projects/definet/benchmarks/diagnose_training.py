"""Instrument a short training run (prints figures, never asserts): how the CPU-scale failure was found.

    uv run benchmarks/diagnose_training.py --steps 300                # configs/cpu.yaml
    uv run benchmarks/diagnose_training.py model.hrnet_init=official model.hrnet_bn_momentum=0.01
    uv run benchmarks/diagnose_training.py model.arch=unet lr=1e-3

Every ``--every`` steps: the running training loss, the gradient norm of each module (backbone stages, DFPL,
REAM, SAFF; before the value clipping), how much the segmentation logits vary across the images of the batch,
and the validation AUC / IoU of the eval-mode model. At the end: the ratio of each backbone BatchNorm's running
variance to the variance of its input on a training batch (eval mode uses the former; ratios far from 1 mean
eval-mode features are wrongly scaled), then the test AUC per inpainting method.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from definet.config import TrainConfig
from definet.data import offline_splits
from definet.evaluate import evaluate
from definet.losses import definet_loss
from definet.model import build_model, count_parameters
from shared.runs import parse_args, seed_everything, select_device
from shared.runs.cli import build_parser

CPU_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "cpu.yaml"


def module_groups(model: torch.nn.Module) -> dict[str, list[torch.nn.Parameter]]:
    """Parameters grouped by top-level module (backbone split by stage)."""
    groups: dict[str, list] = {}
    for name, p in model.named_parameters():
        parts = name.split(".")
        groups.setdefault(parts[0] if parts[0] != "backbone" else "backbone." + parts[1], []).append(p)
    return groups


def running_var_ratios(model: torch.nn.Module, x: torch.Tensor) -> dict[str, float]:
    """running_var / batch variance of the input, channel means, for every backbone BatchNorm."""
    if not hasattr(model, "backbone"):
        return {}
    seen: dict[str, float] = {}
    bns = {n: m for n, m in model.backbone.named_modules() if isinstance(m, torch.nn.BatchNorm2d)}
    hooks = [m.register_forward_hook(lambda m, i, o, n=n: seen.__setitem__(n, float(i[0].var((0, 2, 3)).mean())))
             for n, m in bns.items()]
    model.eval()
    with torch.no_grad():
        model.backbone(x)
    for h in hooks:
        h.remove()
    return {n: float(m.running_var.mean()) / max(seen[n], 1e-30) for n, m in bns.items()}


def main(argv: list[str] | None = None) -> None:
    parser = build_parser(TrainConfig, __doc__)
    parser.set_defaults(config=CPU_CONFIG)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--every", type=int, default=50)
    cfg, args = parse_args(TrainConfig, argv, parser=parser)
    torch.set_num_threads(args.threads)
    seed_everything(cfg.seed)
    device = select_device(cfg.device)
    splits = offline_splits(cfg.data, cfg.seed)
    model = build_model(cfg.model).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    groups = module_groups(model)
    print(f"{cfg.model.arch}, {count_parameters(model):,} parameters, {cfg.data.image_size} px, batch "
          f"{cfg.batch_size}, lr {cfg.lr:g}, init {cfg.model.hrnet_init}, BN momentum {cfg.model.hrnet_bn_momentum}")
    train, step, losses, t0 = splits["train"], 0, [], time.time()
    while step < args.steps:
        train.epoch += 1
        loader = DataLoader(train, batch_size=cfg.batch_size, shuffle=True, drop_last=True,
                            generator=torch.Generator().manual_seed(cfg.seed * 1_000_003 + train.epoch))
        for image, mask in loader:
            model.train()
            image, mask = image.to(device), mask.to(device)
            edge, seg = model(image)
            loss = definet_loss(edge, seg, mask, cfg.loss)["loss"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            norms = {g: float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in ps if p.grad is not None])))
                     for g, ps in groups.items()}
            for p in model.parameters():
                if p.grad is not None:
                    p.grad.clamp_(-cfg.clip, cfg.clip)
            optimizer.step()
            step += 1
            losses.append(float(loss.detach()))
            if step % args.every == 0 or step == 1:
                val = evaluate(model, splits["val"].images, splits["val"].masks, cfg.data.image_size, device)
                spread = float(seg.detach().std(0).mean())
                print(f"step {step:5d}  loss {np.mean(losses[-args.every:]):.3f}  logit spread across images "
                      f"{spread:.3f}  val AUC {val['auc']:.3f} IoU {val['iou']:.3f}  {time.time() - t0:.0f}s")
                print("    grad norms: " + "  ".join(f"{g} {v:.1e}" for g, v in norms.items()))
            if step >= args.steps:
                break
    ratios = running_var_ratios(model, image)
    if ratios:
        values = np.array(list(ratios.values()))
        print(f"backbone BN running_var / batch var: median {np.median(values):.3g}, min {values.min():.3g}, "
              f"max {values.max():.3g} over {len(values)} layers")
    for name in (n for n in splits if n.startswith("test/")):
        r = evaluate(model, splits[name].images, splits[name].masks, cfg.data.image_size, device)
        print(f"{name:17s} AUC {r['auc']:.3f}  IoU {r['iou']:.3f}")


if __name__ == "__main__":
    main()
