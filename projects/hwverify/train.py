"""Train a handwriting verifier (VLM-HV, arXiv 2407.21788): the siamese ResNet-18 baseline or PaliGemma + LoRA.

    uv run train.py                                  # ResNet-18 on the synthetic "and" writers (configs/cpu.yaml)
    uv run train.py --model vlm                      # tiny PaliGemma + LoRA on the same pairs
    uv run train.py --smoke                          # seconds
    uv run train.py --config configs/paper.yaml --data-root /data/CEDAR_AND resnet.weights=PATH
    uv run train.py --resume runs/<run>              # continue a killed run

Without ``--config`` the offline default ``configs/cpu.yaml`` is used; ``configs/paper.yaml`` is the paper's
recipe. The run folder gets config.json, metrics.jsonl, log.txt, checkpoints/ (ResNet: safetensors; VLM:
LoRA adapters in checkpoints/ and, with the processor, ``save_pretrained`` under vlm/) and eval.json.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from hwverify.config import Config
from hwverify.data import HandwritingData, load_data, make_pairs, model_input, writer_batches
from hwverify.evaluate import resnet_pair_scores
from hwverify.metrics import verification_metrics
from hwverify.model import SiameseResNet18
from shared.runs import RunDir, parse_args, progress, seed_everything, select_device
from shared.runs.cli import build_parser

HERE = Path(__file__).resolve().parent
CPU_CONFIG = HERE / "configs" / "cpu.yaml"
SMOKE = {"data": {"n_writers": 12, "samples_per_writer": 3, "image_size": 32, "val_fraction": 0.25,
                  "test_fraction": 0.25},
         "resnet": {"max_epochs": 2, "batch_writers": 3},
         "vlm": {"epochs": 1, "image_size": 32, "tiny_hidden": 32, "max_train_pairs": 32, "max_new_tokens": 12}}


def split_pairs(data: HandwritingData, seed: int) -> dict[str, np.ndarray]:
    """The fixed validation and test pairs (and the VLM's training pairs), SSL-HV construction."""
    return {split: make_pairs(data.writer_ids, data.splits[split], np.random.default_rng(seed + 10 + k))
            for k, split in enumerate(("train", "val", "test"))}


# ---- ResNet-18 siamese baseline --------------------------------------------------------------------------
def train_resnet(cfg: Config, run: RunDir, data: HandwritingData, device: torch.device, quiet: bool,
                 resume: bool) -> dict:
    """Adam on the pair cross-entropy; early stopping on validation F1 (SSL-HV recipe)."""
    rc = cfg.resnet
    model = SiameseResNet18(rc.embedding_dim, rc.hidden_dim, rc.weights, rc.freeze_backbone).to(device)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=rc.lr)
    images = torch.from_numpy(model_input(data.images))
    pairs = split_pairs(data, cfg.seed)
    batch_rng = np.random.default_rng(cfg.seed + 2)
    state = {"epoch": 0, "best_f1": -1.0, "best_epoch": -1, "bad_epochs": 0}
    if resume:
        state = run.load_checkpoint("last", {"model": model}, optimizers={"adam": optimizer})
        batch_rng.bit_generator.state = state.pop("batch_rng")
        run.rewind_metrics(state["epoch"], key="epoch")
        run.log(f"resumed after epoch {state['epoch']}", quiet=quiet)
    run.log(f"ResNet-18 siamese: {sum(p.numel() for p in model.parameters() if p.requires_grad):,} trainable "
            f"parameters; {len(pairs['val'])} val / {len(pairs['test'])} test pairs", quiet=quiet)

    while state["epoch"] < rc.max_epochs and state["bad_epochs"] < rc.patience:
        model.train()
        losses, start = [], time.time()
        batches = list(writer_batches(data.writer_ids, data.splits["train"], rc.batch_writers, batch_rng))
        for samples, batch in progress(batches, desc=f"epoch {state['epoch'] + 1}", quiet=quiet):
            emb = model.embedding(images[samples].to(device))  # each image once, shared by all its pairs
            pair = torch.as_tensor(batch, device=device)
            loss = F.cross_entropy(model.pair_logits(emb[pair[:, 0]], emb[pair[:, 1]]), pair[:, 2])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        scores = resnet_pair_scores(model, images, pairs["val"], device)
        val = verification_metrics(pairs["val"][:, 2], (scores > 0.5).astype(int), scores)
        state["epoch"] += 1
        if val["f1"] > state["best_f1"] + rc.min_delta:
            state.update(best_f1=val["f1"], best_epoch=state["epoch"], bad_epochs=0)
            run.save_checkpoint("best", {"model": model}, state={**state})
        else:
            state["bad_epochs"] += 1
        run.log_metrics(epoch=state["epoch"], loss=float(np.mean(losses)), val_accuracy=val["accuracy"],
                        val_f1=val["f1"], val_auc=val["auc"], val_eer=val["eer"], epoch_s=time.time() - start)
        run.log(f"epoch {state['epoch']:3d}  loss {np.mean(losses):.4f}  val acc {val['accuracy']:.3f}  "
                f"F1 {val['f1']:.3f}  AUC {val['auc']:.3f}  EER {val['eer']:.3f}  ({time.time() - start:.0f} s)",
                quiet=quiet)
        run.save_checkpoint("last", {"model": model}, optimizers={"adam": optimizer},
                            state={**state, "batch_rng": batch_rng.bit_generator.state})

    run.load_checkpoint("best", {"model": model}, restore_rng=False)
    scores = resnet_pair_scores(model, images, pairs["test"], device)
    test = verification_metrics(pairs["test"][:, 2], (scores > 0.5).astype(int), scores)
    return {"model": "resnet", "best_epoch": state["best_epoch"], "epochs": state["epoch"], "test": test}


# ---- PaliGemma + LoRA ------------------------------------------------------------------------------------
def vlm_suffixes(data: HandwritingData, pairs: np.ndarray, explain: bool) -> list[str]:
    """Targets "yes"/"no" (+ the style explanation of the synthetic writers when ``explain``)."""
    from hwverify.vlm import answer_text

    if not explain or not data.styles:
        return [answer_text(int(label)) for label in pairs[:, 2]]
    style = lambda i: {k: v[data.writer_ids[i]] for k, v in data.styles.items()}  # noqa: E731
    return [answer_text(int(lab), style(i), style(j)) for i, j, lab in pairs]


def train_vlm(cfg: Config, run: RunDir, data: HandwritingData, device: torch.device, quiet: bool,
              resume: bool) -> dict:
    """Fine-tuning (AdamW; LoRA or full) of PaliGemma on the composed pairs; next-token loss on the answer."""
    from hwverify.vlm import TrainableState, VLMVerifier, load_base, prepare_tuning, save_base, save_trained

    vc = cfg.vlm
    base, processor = load_base(vc)
    if vc.pretrained is None:
        save_base(base, run.path / "vlm")
    verifier = VLMVerifier(prepare_tuning(base, vc), processor, vc, device)
    trainable = TrainableState(verifier.model)
    optimizer = torch.optim.AdamW([p for p in verifier.model.parameters() if p.requires_grad], lr=vc.lr)
    pairs = split_pairs(data, cfg.seed)
    train_pairs = pairs["train"]
    rng = np.random.default_rng(cfg.seed + 3)
    if vc.max_train_pairs is not None and vc.max_train_pairs < len(train_pairs):
        train_pairs = train_pairs[rng.choice(len(train_pairs), vc.max_train_pairs, replace=False)]
    suffixes = np.array(vlm_suffixes(data, train_pairs, vc.explain), dtype=object)
    state = {"epoch": 0}
    if resume:
        state = run.load_checkpoint("last", {"trainable": trainable}, optimizers={"adamw": optimizer})
        rng.bit_generator.state = state.pop("rng")
        run.rewind_metrics(state["epoch"], key="epoch")
    n_train = sum(p.numel() for p in verifier.model.parameters() if p.requires_grad)
    n_all = sum(p.numel() for p in verifier.model.parameters())
    run.log(f"PaliGemma ({vc.vision_tower if vc.pretrained is None else vc.pretrained}, {vc.tuning}): "
            f"{n_train:,} of {n_all:,} parameters train; {len(train_pairs)} training pairs; "
            f"{verifier.size}x{verifier.size} input", quiet=quiet)

    while state["epoch"] < vc.epochs:
        verifier.train()
        order, losses, start = rng.permutation(len(train_pairs)), [], time.time()
        steps = range(0, len(order), vc.batch_size)
        for k in progress(steps, desc=f"epoch {state['epoch'] + 1}", quiet=quiet):
            idx = order[k:k + vc.batch_size]
            loss = verifier.loss(data.originals, train_pairs[idx], list(suffixes[idx]))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        scores = verifier.scores(data.originals, pairs["val"])
        val = verification_metrics(pairs["val"][:, 2], (scores > 0.5).astype(int), scores)
        state["epoch"] += 1
        run.log_metrics(epoch=state["epoch"], loss=float(np.mean(losses)), val_accuracy=val["accuracy"],
                        val_f1=val["f1"], val_auc=val["auc"], val_eer=val["eer"], epoch_s=time.time() - start)
        run.log(f"epoch {state['epoch']:3d}  loss {np.mean(losses):.4f}  val acc {val['accuracy']:.3f}  "
                f"F1 {val['f1']:.3f}  AUC {val['auc']:.3f}  ({time.time() - start:.0f} s)", quiet=quiet)
        run.save_checkpoint("last", {"trainable": trainable}, optimizers={"adamw": optimizer},
                            state={**state, "rng": rng.bit_generator.state})
    save_trained(verifier.model, run.path / "vlm")
    processor.save_pretrained(run.path / "vlm" / "processor")

    test_pairs = pairs["test"] if cfg.eval_max_pairs is None else \
        pairs["test"][:: max(1, len(pairs["test"]) // cfg.eval_max_pairs)]
    scores = verifier.scores(data.originals, test_pairs)
    test = verification_metrics(test_pairs[:, 2], (scores > 0.5).astype(int), scores)
    return {"model": "vlm", "epochs": state["epoch"], "test": test}


# ---- entry point -----------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> dict:
    parser = build_parser(Config, __doc__)
    parser.add_argument("--model", choices=["resnet", "vlm"], default=None, help="verifier to train (config: model)")
    argv = list(sys.argv[1:] if argv is None else argv)
    if not any(a == "--config" or a.startswith("--config=") for a in argv) and "--resume" not in argv:
        argv = ["--config", str(CPU_CONFIG), *argv]
    cfg, args = parse_args(Config, argv, parser=parser, smoke=SMOKE)
    if args.model is not None:
        cfg = dataclasses.replace(cfg, model=args.model)
    if args.resume is not None:
        run = RunDir.open(args.resume)
        cfg = run.read_config(Config)
    else:
        run = RunDir.create(args.out, f"{cfg.model}-{cfg.data.source}{'-smoke' if args.smoke else ''}")
        run.write_config(cfg, "hwverify", "transformers", "peft", "torchvision")
    seed_everything(cfg.seed, deterministic=args.deterministic)
    device = select_device(cfg.device)
    run.log(f"run folder {run.path}  device {device}  model {cfg.model}  data {cfg.data.source}", quiet=args.quiet)

    start = time.time()
    data = load_data(cfg.data, cfg.data_root, cfg.seed)
    run.log(f"{len(data.images)} samples of {np.unique(data.writer_ids).size} writers; split by writer: "
            + ", ".join(f"{k} {np.unique(data.writer_ids[v]).size}" for k, v in data.splits.items()), quiet=args.quiet)
    trainer = train_resnet if cfg.model == "resnet" else train_vlm
    result = trainer(cfg, run, data, device, args.quiet, args.resume is not None)
    result["train_s"] = time.time() - start
    run.write_json("eval.json", {**result, "split": "test", "checkpoint": "best" if cfg.model == "resnet" else "vlm"})
    t = result["test"]
    print(f"run folder: {run.path}")
    print(f"test ({t['n']} writer-disjoint pairs): accuracy {t['accuracy']:.3f}  F1 {t['f1']:.3f}  "
          f"AUC {t['auc']:.3f}  EER {t['eer']:.3f}  [{result['train_s']:.0f} s]")
    return {**result, "run": str(run.path)}


if __name__ == "__main__":
    main()
