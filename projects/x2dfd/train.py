"""X²-DFD training: MFA -> SFS (+ WFS) -> LoRA fine-tuning of the MLLM -> evaluation.

    uv run train.py                       # offline default (configs/cpu.yaml): tiny LLaVA, procedural faces, CPU
    uv run train.py --smoke               # seconds
    uv run train.py --config configs/paper.yaml --data-root /data/deepfakebench   # the paper's recipe
    uv run train.py use_wfs=false         # key=value overrides of the config dataclass (see --help)

Stages (arXiv 2410.06126, Sec. 3; official code github.com/chenyize111/X2DFD):
1. MFA: ask the base MLLM every candidate-feature question on labelled images, rank by balanced accuracy.
2. WFS: train the blending expert on Self-Blended Images; its P(fake) goes into every question (3 decimals) and
   the answer gets the official supplement at the 0.30/0.70 thresholds.
3. SFS: explanations for every training image (label-conditioned prompt, or the template from the top-k
   features), composed as "This image is {label}. {explanation}".
4. LoRA fine-tuning (r=16, alpha=32, dropout 0.05, lr 2e-4, projector 2e-5, cosine, 3 % warm-up), loss on the
   answer tokens only; then frame/video AUC of P(fake) on the test splits, and example explanations.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import numpy as np
import torch
from transformers import get_cosine_schedule_with_warmup

from shared.runs import RunDir, parse_args, progress, seed_everything, select_device
from shared.runs.cli import build_parser
from x2dfd import mfa, sfs
from x2dfd.config import Config
from x2dfd.data import offline_splits, real_splits, training_reals
from x2dfd.pipeline import answers, build_mllm, evaluate, explanations, human_turns, run_mfa
from x2dfd.wfs import build_expert, expert_scores, train_expert

HERE = Path(__file__).resolve().parent
SMOKE = {
    "data.train_videos": 8, "data.test_videos": 8, "data.frames_per_video": 2, "mfa.n_images": 8,
    "expert.epochs": 1, "lora.epochs": 1, "lora.batch_size": 4, "sfs.max_new_tokens": 4,
    "n_explanations": 2, "explanation_tokens": 4, "tiny.vision_hidden": 32, "tiny.text_hidden": 32,
    "tiny.image_size": 32,
}


def parse(argv=None):
    parser = build_parser(Config, "X²-DFD: MFA -> SFS/WFS -> LoRA fine-tuning of a LLaVA deepfake detector")
    parser.set_defaults(config=HERE / "configs" / "cpu.yaml")
    parser.add_argument("--stop-after-epoch", type=int, default=None, metavar="N",
                        help="stop after N fine-tuning epochs (as if killed); continue with --resume")
    return parse_args(Config, argv, parser=parser, smoke=SMOKE)


def load_data(cfg: Config):
    if cfg.data.dataset == "offline":
        return offline_splits(cfg.data, cfg.seed)
    if cfg.data.dataset == "deepfakebench":
        return real_splits(cfg.data, cfg.data_root)
    raise ValueError(f"data.dataset must be 'offline' or 'deepfakebench', got {cfg.data.dataset!r}")


def prepare_expert(cfg: Config, run: RunDir, device, rng, quiet: bool):
    """The WFS blending expert: loaded from cfg.expert.weights, or trained on SBI of the training reals."""
    expert = build_expert(cfg.expert.arch, cfg.expert.weights).to(device)
    if cfg.expert.weights is None:
        if cfg.data.dataset != "offline":
            raise ValueError("training the blending expert needs landmarks (offline data); for real data pass "
                             "expert.weights=<best_gf.pth> (see the README)")
        reals = training_reals(cfg.data, cfg.seed, cfg.data.train_videos)
        history = train_expert(expert, reals, cfg.expert.epochs, cfg.expert.batch_size, cfg.expert.lr, device, rng,
                               cfg.expert.image_size, log=run.log, quiet=quiet)
        run.log_metrics(stage="expert", sbi_loss=history)
    run.save_checkpoint("expert", {"expert": expert})
    return expert


def main(argv=None) -> dict:
    cfg, args = parse(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
    device = select_device(cfg.device)
    resume = args.resume is not None
    if resume:
        run = RunDir.open(args.resume)
        cfg = run.read_config(Config)
    else:
        run = RunDir.create(args.out, "x2dfd" + ("-smoke" if args.smoke else ""))
        run.write_config(cfg, "x2dfd", "torch", "transformers", "peft")
    seed_everything(cfg.seed, args.deterministic)
    rng = np.random.default_rng(cfg.seed)
    t0, c0 = time.time(), time.process_time()
    run.log(f"run folder: {run.path}  device: {device}  mllm: {cfg.mllm}  SFS={cfg.use_sfs} WFS={cfg.use_wfs}")

    # ---- data and the base MLLM --------------------------------------------------------------------------------
    splits = load_data(cfg)
    train = splits["train"]
    bank = mfa.load_question_bank()
    mllm = build_mllm(cfg, bank)
    mllm.model.to(device)
    run.log(f"train frames: {len(train)} ({int(train.labels.sum())} fake); test splits: "
            + ", ".join(f"{k}={len(v)}" for k, v in splits.items() if k != "train"))

    # ---- 1. MFA: rank the candidate features by the base MLLM's balanced accuracy -------------------------------
    if resume:
        ranking = run.read_json("mfa.json")
    else:
        ranking = run_mfa(mllm, train, bank, cfg.mfa, rng)
        run.write_json("mfa.json", ranking)
    top = [bank[i] for i in ranking["top_k"]]
    run.log("MFA top features: " + " | ".join(f"{q['feature']} ({a:.3f})" for q, a in
                                              zip(top, ranking["balanced_accuracy"])))

    # ---- 2. WFS: the blending expert and its scores ---------------------------------------------------------------
    expert, train_scores = None, None
    if cfg.use_wfs:
        if resume:
            expert = build_expert(cfg.expert.arch).to(device)
            run.load_checkpoint("expert", {"expert": expert}, restore_rng=False)
        else:
            expert = prepare_expert(cfg, run, device, rng, args.quiet)
        train_scores = expert_scores(expert, train.images, device, size=cfg.expert.image_size)

    # ---- 3. SFS: the explainable fine-tuning set -----------------------------------------------------------------
    if resume:
        items = run.read_json("sft_items.json")
    else:
        expl = explanations(mllm, train, top, cfg) if cfg.use_sfs else None
        asks = human_turns(train_scores, cfg.expert.alias, len(train))
        gpt = answers(train, expl, train_scores, cfg.expert)
        items = sfs.build_dataset(["fake" if y else "real" for y in train.labels], [""] * len(train), None,
                                  [str(i) for i in range(len(train))], rng)
        for item in items:  # fill in the turns built above (same item order as the shuffled ids)
            i = int(item["image"])
            item["conversations"][0]["value"], item["conversations"][1]["value"] = asks[i], gpt[i]
        run.write_json("sft_items.json", items)
    run.log(f"SFT example: {items[0]['conversations'][0]['value']!r} -> {items[0]['conversations'][1]['value']!r}")

    # ---- 4. LoRA fine-tuning -------------------------------------------------------------------------------------
    L = cfg.lora
    mllm.add_lora(L.r, L.alpha, L.dropout)
    mllm.model.to(device)
    opt = torch.optim.AdamW(mllm.param_groups(L.lr, L.projector_lr, L.weight_decay))
    steps_per_epoch = math.ceil(len(items) / L.batch_size)
    total = steps_per_epoch * L.epochs
    sched = get_cosine_schedule_with_warmup(opt, math.ceil(L.warmup_ratio * total), total)
    start_epoch = 0
    if resume and (run.checkpoints / "last.safetensors").is_file():
        state = run.load_checkpoint("last", {"mllm": mllm.model}, optimizers={"opt": opt, "sched": sched})
        start_epoch = state["epoch"]
        run.rewind_metrics(start_epoch * steps_per_epoch)
        run.log(f"resumed after epoch {start_epoch}")
    image_of = np.array([int(it["image"]) for it in items])
    for epoch in range(start_epoch, L.epochs):
        mllm.model.train()
        order = torch.randperm(len(items), generator=torch.Generator().manual_seed(cfg.seed * 1000 + epoch)).numpy()
        losses = []
        for s in progress(range(steps_per_epoch), desc=f"LoRA epoch {epoch + 1}/{L.epochs}", quiet=args.quiet):
            batch = order[s * L.batch_size : (s + 1) * L.batch_size]
            loss = mllm.loss(train.images[image_of[batch]], [items[i]["conversations"][0]["value"] for i in batch],
                             [items[i]["conversations"][1]["value"] for i in batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
            step = epoch * steps_per_epoch + s + 1
            if step % 20 == 0 or step == total:
                run.log_metrics(step=step, loss=float(np.mean(losses[-20:])), lr=sched.get_last_lr()[0])
        run.log(f"epoch {epoch + 1}/{L.epochs}: answer loss {np.mean(losses):.4f}")
        run.save_checkpoint("last", {"mllm": mllm.model}, optimizers={"opt": opt, "sched": sched},
                            state={"epoch": epoch + 1})
        if args.stop_after_epoch is not None and epoch + 1 >= args.stop_after_epoch and epoch + 1 < L.epochs:
            run.log(f"stopped after epoch {epoch + 1} (--stop-after-epoch); continue with --resume {run.path}")
            return {"run": str(run.path), "metrics": {}, "stopped": True}

    # ---- evaluation ----------------------------------------------------------------------------------------------
    results = evaluate(mllm, expert, splits, cfg, device, cfg.n_explanations)
    summary = {name: r["metrics"] for name, r in results.items()}
    run.write_json("eval.json", {"metrics": summary, "examples": {k: r["examples"] for k, r in results.items()},
                                 "mfa": ranking, "wall_time_s": round(time.time() - t0, 1),
                                 "cpu_time_s": round(time.process_time() - c0, 1)})
    for name, m in summary.items():
        extra = f"  (expert alone {m['expert_frame_auc']:.3f})" if "expert_frame_auc" in m else ""
        run.log(f"{name:>14}: frame AUC {m['frame_auc']:.3f}  video AUC {m['video_auc']:.3f}{extra}")
    mean_auc = float(np.mean([m["frame_auc"] for m in summary.values()]))
    run.log(f"done in {time.time() - t0:.0f} s wall, {time.process_time() - c0:.0f} s CPU. run folder: {run.path}")
    print(f"headline: mean frame AUC over test splits = {mean_auc:.3f}  ({run.path})")
    return {"run": str(run.path), "metrics": summary, "mean_frame_auc": mean_auc,
            "cpu_time_s": time.process_time() - c0}


if __name__ == "__main__":
    main()
