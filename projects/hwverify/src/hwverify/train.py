"""Train a handwriting verifier (VLM-HV, arXiv 2407.21788): the siamese ResNet-18 baseline or PaliGemma.

    uv run train.py                                  # ResNet-18 on the synthetic "and" writers (configs/cpu.yaml)
    uv run train.py --model vlm                      # tiny PaliGemma + LoRA on the same pairs
    uv run train.py --model vlm vlm.vision_tower=lite0 vlm.tuning=full vlm.freeze_vision=true
    uv run train.py --smoke                          # seconds
    uv run train.py --config configs/paper.yaml --data-root /data/CEDAR_AND resnet.weights=PATH
    uv run train.py --resume runs/<run>              # continue a killed run (key=value changes apply on top)

Without ``--config`` the offline default ``configs/cpu.yaml`` is used; ``configs/paper.yaml`` is the paper's
recipe. The run folder gets config.json, status.json, metrics.jsonl, log.txt, checkpoint sets (``last`` to
resume; ``final`` = what the run reports: the early-stopped ResNet, the tuned VLM; ``base`` = the tiny VLM's
starting weights) and eval.json.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from hwverify.config import Config
from hwverify.data import HandwritingData, check_data, load_data, make_pairs, model_input, writer_batches
from hwverify.evaluate import resnet_pair_scores
from hwverify.metrics import verification_metrics
from hwverify.model import SiameseResNet18
from shared.runs import Started, UsageError, build_parser, entrypoint, guard_finite, progress, start

PROJECT = Path(__file__).resolve().parents[2]
CPU_CONFIG = PROJECT / "configs" / "cpu.yaml"
SMOKE = {"data": {"n_writers": 12, "samples_per_writer": 3, "image_size": 32, "original_size": 32,
                  "val_fraction": 0.25, "test_fraction": 0.25},
         "resnet": {"max_epochs": 2, "batch_writers": 3},
         "vlm": {"epochs": 1, "image_size": 32, "tiny_hidden": 32, "max_train_pairs": 32, "max_new_tokens": 12}}


def split_pairs(data: HandwritingData, seed: int) -> dict[str, np.ndarray]:
    """The fixed validation and test pairs (and the VLM's training pairs), SSL-HV construction."""
    return {split: make_pairs(data.writer_ids, data.splits[split], np.random.default_rng(seed + 10 + k))
            for k, split in enumerate(("train", "val", "test"))}


def pair_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """SSL-HV's "cce": cross-entropy of the pair head's two logits against same (1) / different (0)."""
    return F.cross_entropy(logits, labels)


def grad_norm(parameters) -> torch.Tensor:
    return torch.nn.utils.clip_grad_norm_([p for p in parameters if p.grad is not None], float("inf"))


# ---- ResNet-18 siamese baseline --------------------------------------------------------------------------
def train_resnet(s: Started, data: HandwritingData) -> dict:
    """Adam on the pair cross-entropy; early stopping on validation F1 (SSL-HV recipe)."""
    cfg, run, device, quiet = s.cfg, s.run, s.device, s.args.quiet
    rc = cfg.resnet
    model = SiameseResNet18(rc.embedding_dim, rc.hidden_dim, rc.weights, rc.freeze_backbone).to(device)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=rc.lr)
    images = torch.from_numpy(model_input(data.images))
    pairs = split_pairs(data, cfg.seed)
    batch_rng = np.random.default_rng(cfg.seed + 2)
    state = {"epoch": 0, "step": 0, "best_f1": -1.0, "best_epoch": -1, "bad_epochs": 0}
    if s.resumed and run.has_checkpoint("last"):
        state = run.load_checkpoint("last", {"model": model}, optimizers={"adam": optimizer})
        batch_rng.bit_generator.state = state.pop("batch_rng")
        run.rewind_metrics(state["epoch"], key="epoch")
        s.log(f"resumed after epoch {state['epoch']}")
    s.log(f"ResNet-18 siamese: {sum(p.numel() for p in model.parameters() if p.requires_grad):,} trainable "
          f"parameters; {len(pairs['val'])} val / {len(pairs['test'])} test pairs")

    while state["epoch"] < rc.max_epochs and state["bad_epochs"] < rc.patience:
        model.train()
        losses, start_time = [], time.time()
        batches = list(writer_batches(data.writer_ids, data.splits["train"], rc.batch_writers, batch_rng))
        for samples, batch in progress(batches, desc=f"epoch {state['epoch'] + 1}", quiet=quiet):
            state["step"] += 1
            emb = model.embedding(images[samples].to(device))  # each image once, shared by all its pairs
            pair = torch.as_tensor(batch, device=device)
            loss = pair_loss(model.pair_logits(emb[pair[:, 0]], emb[pair[:, 1]]), pair[:, 2])
            guard_finite(state["step"], loss=loss)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            guard_finite(state["step"], grad_norm=grad_norm(model.parameters()))
            optimizer.step()
            losses.append(loss.item())
        scores = resnet_pair_scores(model, images, pairs["val"], device)
        val = verification_metrics(pairs["val"][:, 2], (scores > 0.5).astype(int), scores)
        state["epoch"] += 1
        if val["f1"] > state["best_f1"] + rc.min_delta:
            state.update(best_f1=val["f1"], best_epoch=state["epoch"], bad_epochs=0)
            run.save_checkpoint("final", {"model": model}, state={**state})
        else:
            state["bad_epochs"] += 1
        run.log_metrics(epoch=state["epoch"], loss=float(np.mean(losses)), val_accuracy=val["accuracy"],
                        val_f1=val["f1"], val_auc=val["auc"], val_eer=val["eer"], epoch_s=time.time() - start_time)
        s.log(f"epoch {state['epoch']:3d}  loss {np.mean(losses):.4f}  val acc {val['accuracy']:.3f}  "
              f"F1 {val['f1']:.3f}  AUC {val['auc']:.3f}  EER {val['eer']:.3f}  ({time.time() - start_time:.0f} s)")
        run.save_checkpoint("last", {"model": model}, optimizers={"adam": optimizer},
                            state={**state, "batch_rng": batch_rng.bit_generator.state})

    run.load_checkpoint("final", {"model": model}, restore_rng=False)
    scores = resnet_pair_scores(model, images, pairs["test"], device)
    test = verification_metrics(pairs["test"][:, 2], (scores > 0.5).astype(int), scores)
    return {"model": "resnet", "best_epoch": state["best_epoch"], "epochs": state["epoch"], "test": test}


# ---- PaliGemma (LoRA or full tuning) ---------------------------------------------------------------------
def vlm_suffixes(data: HandwritingData, pairs: np.ndarray, explain: bool) -> list[str]:
    """Targets "yes"/"no" (+ the style explanation of the synthetic writers when ``explain``)."""
    from hwverify.vlm import answer_text

    if not explain or not data.styles:
        return [answer_text(int(label)) for label in pairs[:, 2]]
    style = lambda i: {k: v[data.writer_ids[i]] for k, v in data.styles.items()}  # noqa: E731
    return [answer_text(int(lab), style(i), style(j)) for i, j, lab in pairs]


def train_vlm(s: Started, data: HandwritingData) -> dict:
    """AdamW fine-tuning of PaliGemma (LoRA or full) on the composed pairs; next-token loss on the answer."""
    from hwverify.vlm import ModelState, TrainableState, VLMVerifier, load_base, prepare_tuning

    cfg, run, quiet = s.cfg, s.run, s.args.quiet
    vc = cfg.vlm
    base, processor = load_base(vc)
    if vc.pretrained is None:  # the tiny base has no published weights: keep its starting point in the run
        if s.resumed and run.has_checkpoint("base"):
            run.load_checkpoint("base", {"base": ModelState(base)}, restore_rng=False)
        else:
            run.save_checkpoint("base", {"base": ModelState(base)})
    verifier = VLMVerifier(prepare_tuning(base, vc), processor, vc, s.device)
    trainable = TrainableState(verifier.model)
    params = [p for p in verifier.model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=vc.lr)
    pairs = split_pairs(data, cfg.seed)
    train_pairs = pairs["train"]
    rng = np.random.default_rng(cfg.seed + 3)
    if vc.max_train_pairs is not None and vc.max_train_pairs < len(train_pairs):
        train_pairs = train_pairs[rng.choice(len(train_pairs), vc.max_train_pairs, replace=False)]
    suffixes = np.array(vlm_suffixes(data, train_pairs, vc.explain), dtype=object)
    state = {"epoch": 0, "step": 0}
    if s.resumed and run.has_checkpoint("last"):
        state = run.load_checkpoint("last", {"trainable": trainable}, optimizers={"adamw": optimizer})
        rng.bit_generator.state = state.pop("rng")
        run.rewind_metrics(state["epoch"], key="epoch")
        s.log(f"resumed after epoch {state['epoch']}")
    s.log(f"PaliGemma ({vc.vision_tower if vc.pretrained is None else vc.pretrained}, {vc.tuning}): "
          f"{sum(p.numel() for p in params):,} of {sum(p.numel() for p in verifier.model.parameters()):,} "
          f"parameters train; {len(train_pairs)} training pairs; {verifier.size}x{verifier.size} input")

    while state["epoch"] < vc.epochs:
        verifier.train()
        order, losses, start_time = rng.permutation(len(train_pairs)), [], time.time()
        for k in progress(range(0, len(order), vc.batch_size), desc=f"epoch {state['epoch'] + 1}", quiet=quiet):
            state["step"] += 1
            idx = order[k:k + vc.batch_size]
            loss = verifier.loss(data.originals, train_pairs[idx], list(suffixes[idx]))
            guard_finite(state["step"], loss=loss)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            guard_finite(state["step"], grad_norm=grad_norm(params))
            optimizer.step()
            losses.append(loss.item())
        scores = verifier.scores(data.originals, pairs["val"], quiet=quiet)
        val = verification_metrics(pairs["val"][:, 2], (scores > 0.5).astype(int), scores)
        state["epoch"] += 1
        run.log_metrics(epoch=state["epoch"], loss=float(np.mean(losses)), val_accuracy=val["accuracy"],
                        val_f1=val["f1"], val_auc=val["auc"], val_eer=val["eer"], epoch_s=time.time() - start_time)
        s.log(f"epoch {state['epoch']:3d}  loss {np.mean(losses):.4f}  val acc {val['accuracy']:.3f}  "
              f"F1 {val['f1']:.3f}  AUC {val['auc']:.3f}  ({time.time() - start_time:.0f} s)")
        run.save_checkpoint("last", {"trainable": trainable}, optimizers={"adamw": optimizer},
                            state={**state, "rng": rng.bit_generator.state})
    run.save_checkpoint("final", {"trainable": trainable}, state={**state})

    test_pairs = pairs["test"] if cfg.eval_max_pairs is None else \
        pairs["test"][:: max(1, len(pairs["test"]) // cfg.eval_max_pairs)]
    scores = verifier.scores(data.originals, test_pairs, quiet=quiet)
    test = verification_metrics(test_pairs[:, 2], (scores > 0.5).astype(int), scores)
    return {"model": "vlm", "epochs": state["epoch"], "test": test}


# ---- entry point -----------------------------------------------------------------------------------------
def check_inputs(cfg: Config, args) -> None:
    """Everything that can be checked before a run folder exists: data layout, local weights."""
    if cfg.model not in ("resnet", "vlm"):
        raise UsageError(f"model must be 'resnet' or 'vlm', got {cfg.model!r}")
    check_data(cfg.data, cfg.data_root)
    if cfg.model == "resnet" and cfg.resnet.weights is not None and not Path(cfg.resnet.weights).expanduser().is_file():
        raise UsageError(f"ResNet-18 ImageNet weights '{cfg.resnet.weights}' not found; download torchvision's "
                         "resnet18-f37072fd.pth and pass resnet.weights=PATH, or resnet.weights=null")
    if cfg.model == "vlm" and cfg.vlm.pretrained is not None and not Path(cfg.vlm.pretrained).expanduser().is_dir():
        from huggingface_hub import snapshot_download

        try:  # a Hub id is fine if it is already in the local cache
            snapshot_download(cfg.vlm.pretrained, local_files_only=True)
        except Exception as err:  # noqa: BLE001 -- any failure means: not available offline
            raise UsageError(
                f"PaliGemma weights '{cfg.vlm.pretrained}' are neither a local folder nor in the local Hugging Face "
                "cache; download google/paligemma-3b-pt-224 (gated) with `huggingface-cli download "
                "google/paligemma-3b-pt-224 --local-dir PATH` and pass vlm.pretrained=PATH, or vlm.pretrained=null "
                "for the tiny model") from err


def model_flag(argv: list[str]) -> list[str]:
    """``--model X`` (a shorthand kept from the first version) becomes the override ``model=X``."""
    out, k = [], 0
    while k < len(argv):
        if argv[k] == "--model" and k + 1 < len(argv):
            out.append(f"model={argv[k + 1]}")
            k += 2
        elif argv[k].startswith("--model="):
            out.append("model=" + argv[k].split("=", 1)[1])
            k += 1
        else:
            out.append(argv[k])
            k += 1
    return out


@entrypoint
def main(argv: list[str] | None = None) -> dict:
    import sys

    parser = build_parser(Config, __doc__)
    parser.add_argument("--model", choices=["resnet", "vlm"], default=None,
                        help="verifier to train (the same as model=resnet|vlm)")
    argv = model_flag(list(sys.argv[1:] if argv is None else argv))
    s = start(Config, argv, tag=lambda c: f"{c.model}-{c.data.source}", default_config=CPU_CONFIG, smoke=SMOKE,
              parser=parser, uses_data_root=lambda c: c.data.source == "cedar", data_root_hint="data.source=cedar",
              check=check_inputs, packages=("hwverify", "transformers", "peft", "torchvision", "timm"))
    cfg, run = s.cfg, s.run
    s.log(f"run folder {run.path}  device {s.device}  model {cfg.model}  data {cfg.data.source}")
    start_time = time.time()
    data = load_data(cfg.data, cfg.data_root, cfg.seed)
    s.log(f"{len(data.images)} samples of {np.unique(data.writer_ids).size} writers; split by writer: "
          + ", ".join(f"{k} {np.unique(data.writer_ids[v]).size}" for k, v in data.splits.items()))
    result = (train_resnet if cfg.model == "resnet" else train_vlm)(s, data)
    result["train_s"] = time.time() - start_time
    run.finish({**result, "split": "test", "checkpoint": "final"})
    t = result["test"]
    s.log(f"run folder: {run.path}")
    s.log(f"test ({t['n']} writer-disjoint pairs): accuracy {t['accuracy']:.3f}  F1 {t['f1']:.3f}  "
          f"AUC {t['auc']:.3f}  EER {t['eer']:.3f}  [{result['train_s']:.0f} s]")
    return {**result, "run": str(run.path)}
