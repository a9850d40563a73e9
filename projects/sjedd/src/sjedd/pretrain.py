"""Pretrain the tiny CLIP with CLIP's contrastive objective on real synthetic faces and generic captions.

The paper fine-tunes OpenAI's pretrained CLIP ViT-B/32. Offline there is no pretrained CLIP, and a tiny ViT trained
from scratch on ~1,600 frames does not generalise to unseen identities (README). This script is our stand-in for the
pretraining stage: thousands of *real* faces of identities that the detector never sees (``identities``), each with
a caption of what is visible (:mod:`sjedd.captions`); no manipulated image and no manipulation label is used.

    uv run pretrain.py --config configs/pretrain.yaml --export pretrained   # the committed checkpoint
    uv run pretrain.py --smoke                                              # seconds, for tests

(The offline default of ``train.py`` now uses a CNN image tower trained from scratch, ``image_tower=cnn``; this
pretrained tiny ViT CLIP is what ``image_tower=clip`` fine-tunes from: README, Deviations.)

``--export DIR`` writes ``DIR/tiny_clip_faces.safetensors`` (the CLIPModel state dict), ``DIR/tiny_clip_faces.json``
(its config, metrics and command) and ``DIR/tiny_clip_faces.log``;
``train.py image_tower=clip tiny_init=DIR/tiny_clip_faces.safetensors`` fine-tunes from it.
"""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from shared.data.faces_synth import make_dataset
from shared.runs import RunDir, build_parser, entrypoint, guard_finite, package_versions, progress, start
from sjedd.captions import face_captions
from sjedd.config import PretrainConfig
from sjedd.losses import clip_contrastive_loss
from sjedd.model import _features, preprocess, tiny_clip

SMOKE = {"n_images": 48, "held_out": 16, "identities": (1000, 1040), "face_size": 32, "tiny_width": 32,
         "tiny_layers": 1, "epochs": 2, "batch_size": 16}
EXPORT_NAME = "tiny_clip_faces"


def retrieval_accuracy(clip, images: torch.Tensor, tokens: dict, device: torch.device) -> float:
    """Top-1 image-to-caption retrieval among the given frames (a caption shared by several frames counts as a hit
    for each of them)."""
    clip.eval()
    with torch.no_grad():
        image = torch.nn.functional.normalize(_features(clip.get_image_features(
            pixel_values=preprocess(clip, images.to(device)))), dim=-1)
        text = torch.nn.functional.normalize(_features(clip.get_text_features(
            **{k: v.to(device) for k, v in tokens.items()})), dim=-1)
    best = (image @ text.T).argmax(1).cpu()
    same = (tokens["input_ids"][best] == tokens["input_ids"]).all(1)
    return float(same.float().mean())


@entrypoint
def main(argv: list[str] | None = None) -> dict:
    parser = build_parser(PretrainConfig, __doc__.split("\n")[0])
    parser.add_argument("--export", type=Path, default=None, help="folder for the exported checkpoint")
    s = start(PretrainConfig, argv, tag="sjedd-pretrain", smoke=SMOKE, parser=parser,
              packages=("sjedd", "transformers"))
    cfg, args, run, device = s.cfg, s.args, s.run, s.device
    if s.resumed:
        s.log("pretrain.py does not resume: it starts over (about 10 minutes)")
    t0 = time.time()

    first, last = cfg.identities
    faces = make_dataset(cfg.n_images, 1, ("real",), (cfg.family,), cfg.face_size, cfg.seed,
                         identities=range(first, last))
    captions = face_captions(faces)
    images = torch.from_numpy(faces.images).permute(0, 3, 1, 2).float() / 255.0
    clip, tokenizer = tiny_clip(image_size=cfg.face_size, patch_size=cfg.tiny_patch, width=cfg.tiny_width,
                                layers=cfg.tiny_layers, heads=max(1, cfg.tiny_width // 16),
                                projection_dim=cfg.tiny_projection)
    clip.to(device)
    tokens = tokenizer(captions, padding=True, return_tensors="pt")
    n_train = len(images) - cfg.held_out
    run.log(f"run folder: {run.path}  device={device}  {n_train} training frames, {len(set(captions))} distinct "
            f"captions, identities [{first}, {last}) of the {cfg.family!r} family ({time.time() - t0:.0f}s)")
    run.log(f"e.g. {captions[0]!r}")

    optim = torch.optim.AdamW(clip.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = -(-n_train // cfg.batch_size)
    total, warmup = cfg.epochs * steps_per_epoch, max(1, cfg.epochs * steps_per_epoch // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(  # linear warm-up over 5 % of the steps, then cosine decay
        optim, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + np.cos(np.pi * min(s, total) / total)))
    gen = torch.Generator().manual_seed(cfg.seed)
    held = {k: v[n_train:] for k, v in tokens.items()}
    step = 0
    for epoch in range(cfg.epochs):
        clip.train()
        losses = []
        order = torch.randperm(n_train, generator=gen)
        for first in progress(range(0, n_train, cfg.batch_size), desc=f"epoch {epoch + 1}/{cfg.epochs}",
                              quiet=args.quiet):
            idx = order[first:first + cfg.batch_size]
            image = _features(clip.get_image_features(pixel_values=preprocess(clip, images[idx].to(device))))
            text = _features(clip.get_text_features(input_ids=tokens["input_ids"][idx].to(device),
                                                    attention_mask=tokens["attention_mask"][idx].to(device)))
            loss = clip_contrastive_loss(image, text, clip.logit_scale)
            guard_finite(step + 1, loss=loss)
            optim.zero_grad()
            loss.backward()
            optim.step()
            sched.step()
            step += 1
            losses.append(loss.item())
        acc = retrieval_accuracy(clip, images[n_train:], held, device)
        run.log_metrics(step=step, epoch=epoch + 1, loss=float(np.mean(losses)), held_out_retrieval=acc)
        run.log(f"epoch {epoch + 1}: contrastive loss {np.mean(losses):.4f}  held-out caption retrieval top-1 "
                f"{acc:.3f}  ({time.time() - t0:.0f}s)")
    run.save_checkpoint("clip", {"clip": clip})
    chance = retrieval_accuracy(tiny_clip(image_size=cfg.face_size, patch_size=cfg.tiny_patch, width=cfg.tiny_width,
                                          layers=cfg.tiny_layers, heads=max(1, cfg.tiny_width // 16),
                                          projection_dim=cfg.tiny_projection)[0].to(device),
                                images[n_train:], held, device)
    summary = {"config": asdict(cfg), "metrics": run.read_metrics()[-1], "untrained_retrieval": chance,
               "wall_time_s": round(time.time() - t0, 1), "device": str(device),
               "versions": package_versions("sjedd", "transformers"),
               "command": "uv run pretrain.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    run.write_json("pretrain.json", summary)
    if args.export is not None:
        args.export.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in clip.state_dict().items()}
        save_file(state, str(args.export / f"{EXPORT_NAME}.safetensors"), metadata={"format": "pt"})
        RunDir(args.export).write_json(f"{EXPORT_NAME}.json", summary)
        shutil.copy(run.path / "log.txt", args.export / f"{EXPORT_NAME}.log")
        run.log(f"exported {args.export / EXPORT_NAME}.safetensors")
    run.finish({"held_out_retrieval": summary["metrics"]["held_out_retrieval"], "untrained_retrieval": chance})
    run.log(f"done: {run.path}  held-out caption retrieval top-1 {summary['metrics']['held_out_retrieval']:.3f} "
            f"(untrained {chance:.3f})")
    return {"run": run.path, **summary}


if __name__ == "__main__":
    main()
