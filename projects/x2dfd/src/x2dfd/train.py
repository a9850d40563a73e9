"""X²-DFD training: (base prior) -> MFA -> WFS -> SFS -> LoRA fine-tuning of the MLLM -> evaluation.

    uv run train.py                       # offline default (configs/cpu.yaml): tiny LLaVA, procedural faces, CPU
    uv run train.py --smoke               # seconds
    uv run train.py --config configs/paper.yaml --data-root /data/deepfakebench   # the paper's recipe
    uv run train.py use_wfs=false         # key=value overrides of the config dataclass (see --help)
    uv run train.py --resume runs/<run>   # continue a killed run (finished stages are loaded, not redone)

Stages (arXiv 2410.06126, Sec. 3; official code github.com/chenyize111/X2DFD):
0. (offline tiny LLaVA only) the base MLLM's prior: attribute-caption pre-training (``x2dfd.pretrain``).
1. MFA (Sec. 3.1): ask the base MLLM every candidate-feature question on labelled images, rank by balanced
   accuracy (official ``rank_questions.py``).
2. WFS (Sec. 3.2): train the blending expert on Self-Blended Images; its P(fake) goes into every question
   (3 decimals) and the answer gets the official supplement at the 0.30/0.70 thresholds.
3. SFS (Sec. 3.2): explanations for every training image from the MFA top-k features, composed as
   "This image is {label}. {explanation}".
4. LoRA fine-tuning (Sec. 3.3; r=16, alpha=32, dropout 0.05, lr 2e-4, projector 2e-5, cosine, 3 % warm-up),
   loss on the answer tokens only; then frame/video AUC of P(fake) on the test splits, and example explanations.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

from shared.runs import UsageError, build_parser, entrypoint, guard_finite, progress, start
from x2dfd.config import Config

PROJECT = Path(__file__).resolve().parents[2]
SMOKE = {
    "data.train_videos": 8, "data.test_videos": 8, "data.frames_per_video": 2, "mfa.n_images": 8,
    "expert.epochs": 1, "lora.epochs": 1, "lora.batch_size": 4, "sfs.max_new_tokens": 4,
    "n_explanations": 2, "explanation_tokens": 4, "tiny.vision": "clip", "tiny.vision_hidden": 32,
    "tiny.text_hidden": 32, "tiny.image_size": 32, "pretrain.enabled": True, "pretrain.n_images": 16,
    "pretrain.epochs": 1,
}
SHARED_SECTIONS = ("seed", "mllm", "dtype", "tiny", "data", "pretrain", "mfa", "expert")
"""What a run reused with ``reuse_from`` must share with this one (its base MLLM, MFA ranking and expert)."""


def build_argument_parser():
    parser = build_parser(Config, "X²-DFD: MFA -> SFS/WFS -> LoRA fine-tuning of a LLaVA deepfake detector")
    parser.add_argument("--stop-after-epoch", type=int, default=None, metavar="N",
                        help="stop after N fine-tuning epochs (as if killed); continue with --resume")
    return parser


def check(cfg: Config, args) -> None:
    """Everything that can be validated before a run folder exists."""
    if cfg.data.dataset not in ("offline", "deepfakebench"):
        raise UsageError(f"data.dataset must be 'offline' or 'deepfakebench', got {cfg.data.dataset!r}")
    if cfg.sfs.explanation not in ("mllm", "assessed", "template"):
        raise UsageError(f"sfs.explanation must be 'mllm', 'assessed' or 'template', got {cfg.sfs.explanation!r}")
    if cfg.dtype not in ("float32", "bfloat16", "float16"):
        raise UsageError(f"dtype must be float32, bfloat16 or float16, got {cfg.dtype!r}")
    if cfg.data.dataset == "deepfakebench":
        if cfg.use_wfs and cfg.expert.weights is None:
            raise UsageError("training the blending expert needs landmarks (offline data); for real data pass "
                             "expert.weights=<best_gf.pth> (see the README)")
        from x2dfd.data import DeepfakeBenchRoot

        for name in (cfg.data.train_set, *cfg.data.test_sets):
            DeepfakeBenchRoot(cfg.data_root, name)  # layout errors name the path and the expected tree
    if cfg.expert.weights is not None and not Path(cfg.expert.weights).is_file():
        raise UsageError(f"blending expert weights '{cfg.expert.weights}' not found: expected the official "
                         "best_gf.pth (X2DFD README, Google Drive) or a state dict of expert.arch")
    if cfg.reuse_from is not None:
        reused_config(cfg)


def reused_config(cfg: Config) -> Path:
    """The run folder named by ``cfg.reuse_from``, after checking it shares :data:`SHARED_SECTIONS` with ``cfg``."""
    from shared.runs import RunDir, config_to_dict

    src = RunDir.open(cfg.reuse_from)
    theirs, mine = src.read_json("config.json")["config"], config_to_dict(cfg)
    differ = [k for k in SHARED_SECTIONS if theirs.get(k) != mine.get(k)]
    if differ:
        raise UsageError(f"reuse_from={cfg.reuse_from}: that run differs in {differ}; its base MLLM, MFA ranking "
                         "and expert can only be reused by a run with the same seed, model, data, MFA and expert")
    if cfg.use_wfs and not src.has_checkpoint("expert"):
        raise UsageError(f"reuse_from={cfg.reuse_from} has no blending expert (it ran with use_wfs=false)")
    return src.path


def load_data(cfg: Config):
    from x2dfd.data import offline_splits, real_splits

    if cfg.data.dataset == "offline":
        return offline_splits(cfg.data, cfg.seed)
    return real_splits(cfg.data, cfg.data_root)


def prepare_expert(cfg: Config, run, device, rng, quiet: bool, log=print):
    """The WFS blending expert: loaded from cfg.expert.weights, or trained on SBI of the training reals."""
    from x2dfd.data import training_reals
    from x2dfd.wfs import build_expert, train_expert

    expert = build_expert(cfg.expert.arch, cfg.expert.weights).to(device)
    if cfg.expert.weights is None:
        reals = training_reals(cfg.data, cfg.seed, cfg.data.train_videos)
        history = train_expert(expert, reals, cfg.expert.epochs, cfg.expert.batch_size, cfg.expert.lr, device, rng,
                               cfg.expert.image_size, log=log, quiet=quiet)
        run.log_metrics(stage="expert", sbi_loss=history)
    run.save_checkpoint("expert", {"expert": expert})
    return expert


@entrypoint
def main(argv=None) -> dict:
    s = start(Config, argv, tag=lambda c: "x2dfd", default_config=PROJECT / "configs" / "cpu.yaml", smoke=SMOKE,
              parser=build_argument_parser(), uses_data_root=lambda c: c.data.dataset == "deepfakebench",
              data_root_hint="data.dataset=deepfakebench (configs/paper.yaml)", check=check,
              packages=("x2dfd", "torch", "transformers", "peft"))
    cfg, run, device, args = s.cfg, s.run, s.device, s.args

    import numpy as np
    import torch
    from transformers import get_cosine_schedule_with_warmup

    from shared.runs import RunDir
    from x2dfd import mfa, sfs
    from x2dfd.pipeline import answers, build_mllm, evaluate, explanations, human_turns, run_mfa
    from x2dfd.pretrain import pretrain
    from x2dfd.wfs import build_expert, expert_scores

    t0, c0 = time.time(), time.process_time()
    s.log(f"run folder: {run.path}  device: {device}  mllm: {cfg.mllm}  SFS={cfg.use_sfs} WFS={cfg.use_wfs}")
    src = RunDir.open(reused_config(cfg)) if cfg.reuse_from is not None else None

    # ---- data and the base MLLM --------------------------------------------------------------------------------
    splits = load_data(cfg)
    train = splits["train"]
    bank = mfa.load_question_bank()
    mllm = build_mllm(cfg, bank)
    mllm.model.to(device)
    s.log(f"train frames: {len(train)} ({int(train.labels.sum())} fake); test splits: "
          + ", ".join(f"{k}={len(v)}" for k, v in splits.items() if k != "train"))

    # ---- 0. the base MLLM's prior (offline tiny LLaVA only): attribute-caption pre-training --------------------
    heldout = splits.get("in_domain")
    if cfg.pretrain.enabled and cfg.mllm == "tiny":
        have = src if src is not None else run
        if have.has_checkpoint("base"):
            have.load_checkpoint("base", {"mllm": mllm.model}, restore_rng=False)
            if src is not None:
                run.write_json("pretrain.json", {**src.read_json("pretrain.json"), "reused_from": src.path.name})
                run.save_checkpoint("base", {"mllm": mllm.model})
            s.log("base MLLM: pre-trained weights loaded")
        else:
            untrained = run_mfa(mllm, train, bank, cfg.mfa, np.random.default_rng(cfg.seed), heldout)
            info = pretrain(mllm, bank, cfg.pretrain, cfg.seed, log=s.log, quiet=args.quiet)
            info["mfa_untrained"] = untrained
            run.write_json("pretrain.json", info)
            run.save_checkpoint("base", {"mllm": mllm.model})

    # ---- 1. MFA: rank the candidate features by the base MLLM's balanced accuracy -------------------------------
    if (run.path / "mfa.json").is_file():
        ranking = run.read_json("mfa.json")
    elif src is not None:
        ranking = src.read_json("mfa.json")
        run.write_json("mfa.json", ranking)
    else:
        ranking = run_mfa(mllm, train, bank, cfg.mfa, np.random.default_rng(cfg.seed), heldout)
        run.write_json("mfa.json", ranking)
    top = [bank[i] for i in ranking["top_k"]]
    run.log("MFA top features: " + " | ".join(f"{q['feature']} ({a:.3f})" for q, a in
                                              zip(top, ranking["balanced_accuracy"])), quiet=True)
    k = len(top)
    held = ranking.get("heldout_balanced_accuracy")
    s.log(f"MFA: top-{k} balanced accuracy " + " ".join(f"{a:.3f}" for a in ranking["balanced_accuracy"][:k])
          + (" (held-out " + " ".join(f"{a:.3f}" for a in held[:k]) + ")" if held else ""))

    # ---- 2. WFS: the blending expert and its scores ---------------------------------------------------------------
    expert, train_scores = None, None
    if cfg.use_wfs:
        have = src if src is not None else run
        if have.has_checkpoint("expert"):
            expert = build_expert(cfg.expert.arch).to(device)
            have.load_checkpoint("expert", {"expert": expert}, restore_rng=False)
            if src is not None:
                run.save_checkpoint("expert", {"expert": expert})
        else:
            expert = prepare_expert(cfg, run, device, np.random.default_rng([cfg.seed, 2]), args.quiet, log=s.log)
        train_scores = expert_scores(expert, train.images, device, size=cfg.expert.image_size)

    # ---- 3. SFS: the explainable fine-tuning set -----------------------------------------------------------------
    if (run.path / "sft_items.json").is_file():
        items = run.read_json("sft_items.json")
    else:
        expl, sfs_info = explanations(mllm, train, top, cfg) if cfg.use_sfs else (None, {"mode": "off"})
        run.write_json("sfs.json", sfs_info)
        asks = human_turns(train_scores, cfg.expert.alias, len(train))
        gpt = answers(train, expl, train_scores, cfg.expert)
        items = sfs.build_dataset(["fake" if y else "real" for y in train.labels], [""] * len(train), None,
                                  [str(i) for i in range(len(train))], np.random.default_rng([cfg.seed, 1]))
        for item in items:  # fill in the turns built above (same item order as the shuffled ids)
            i = int(item["image"])
            item["conversations"][0]["value"], item["conversations"][1]["value"] = asks[i], gpt[i]
        run.write_json("sft_items.json", items)
    run.log(f"SFT example: {items[0]['conversations'][0]['value']!r} -> {items[0]['conversations'][1]['value']!r}",
            quiet=True)

    # ---- 4. LoRA fine-tuning -------------------------------------------------------------------------------------
    L = cfg.lora
    torch.manual_seed(cfg.seed + 1234)  # the same LoRA init and dropout draws in every variant of one seed
    mllm.add_lora(L.r, L.alpha, L.dropout)
    mllm.model.to(device)
    opt = torch.optim.AdamW(mllm.param_groups(L.lr, L.projector_lr, L.weight_decay))
    steps_per_epoch = math.ceil(len(items) / L.batch_size)
    total = steps_per_epoch * L.epochs
    sched = get_cosine_schedule_with_warmup(opt, math.ceil(L.warmup_ratio * total), total)
    start_epoch = 0
    if s.resumed and run.has_checkpoint("last"):
        state = run.load_checkpoint("last", {"mllm": mllm.model}, optimizers={"opt": opt, "sched": sched})
        start_epoch = state["epoch"]
        run.rewind_metrics(start_epoch * steps_per_epoch)
        s.log(f"resumed after epoch {start_epoch}")
    image_of = np.array([int(it["image"]) for it in items])
    train_px = mllm.pixel_values(train.images) if mllm.vision == "lite0" else train.images
    for epoch in range(start_epoch, L.epochs):
        mllm.model.train()
        order = torch.randperm(len(items), generator=torch.Generator().manual_seed(cfg.seed * 1000 + epoch)).numpy()
        losses = []
        for st in progress(range(steps_per_epoch), desc=f"LoRA epoch {epoch + 1}/{L.epochs}", quiet=args.quiet):
            batch = order[st * L.batch_size : (st + 1) * L.batch_size]
            loss = mllm.loss(train_px[image_of[batch]], [items[i]["conversations"][0]["value"] for i in batch],
                             [items[i]["conversations"][1]["value"] for i in batch])
            step = epoch * steps_per_epoch + st + 1
            if step == cfg.nan_at_step:
                loss = loss * float("nan")
            guard_finite(step, loss=loss)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
            if step % 20 == 0 or step == total:
                run.log_metrics(step=step, loss=float(np.mean(losses[-20:])), lr=sched.get_last_lr()[0])
        s.log(f"epoch {epoch + 1}/{L.epochs}: answer loss {np.mean(losses):.4f}")
        run.save_checkpoint("last", {"mllm": mllm.model}, optimizers={"opt": opt, "sched": sched},
                            state={"epoch": epoch + 1, "step": (epoch + 1) * steps_per_epoch})
        if args.stop_after_epoch is not None and epoch + 1 >= args.stop_after_epoch and epoch + 1 < L.epochs:
            s.log(f"stopped after epoch {epoch + 1} (--stop-after-epoch); continue with --resume {run.path}")
            return {"run": str(run.path), "metrics": {}, "stopped": True}

    # ---- evaluation ----------------------------------------------------------------------------------------------
    results = evaluate(mllm, expert, splits, cfg, device, cfg.n_explanations, quiet=args.quiet)
    summary = {name: r["metrics"] for name, r in results.items()}
    mean_auc = float(np.mean([m["frame_auc"] for m in summary.values()]))
    run.write_json("examples.json", {k: r["examples"] for k, r in results.items()})
    run.finish({"metrics": summary, "mean_frame_auc": mean_auc, "wall_time_s": round(time.time() - t0, 1),
                "cpu_time_s": round(time.process_time() - c0, 1), "threads": args.threads})
    for name, m in summary.items():
        extra = f"  (expert alone {m['expert_frame_auc']:.3f})" if "expert_frame_auc" in m else ""
        s.log(f"{name:>14}: frame AUC {m['frame_auc']:.3f}  video AUC {m['video_auc']:.3f}{extra}")
    s.log(f"done in {time.time() - t0:.0f} s wall, {time.process_time() - c0:.0f} s CPU. run folder: {run.path}")
    print(f"headline: mean frame AUC over test splits = {mean_auc:.3f}  ({run.path})", flush=True)
    return {"run": str(run.path), "metrics": summary, "mean_frame_auc": mean_auc,
            "cpu_time_s": time.process_time() - c0, "config": dataclasses.asdict(cfg)}


if __name__ == "__main__":
    main()
