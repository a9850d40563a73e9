"""The applications the survey centres on, each with a measured score, on single-object shapes-world scenes.

Every function takes the base-model pipeline and returns plain dicts of figures (and images for the grids):

* :func:`text_to_image` -- CFG (noise blending) / classifier guidance: attribute accuracy judged by the judge;
* :func:`inversion_reconstruction` -- DDIM inversion -> regeneration PSNR (and SDEdit's faithfulness trend);
* :func:`inpainting` -- replacement vs RePaint (resampling) vs DDNM: PSNR / SSIM in the hole, seam PSNR;
* :func:`super_resolution` -- 2x: nearest upsampling vs ILVR vs DDNM vs DPS: PSNR / SSIM, consistency ‖Ax - y‖;
* :func:`p2p_editing` -- P2P word swap vs regeneration with the edited prompt: target attribute, background PSNR;
* :func:`composition` -- composable diffusion (AND) vs one prompt naming both objects: both present.
"""

from __future__ import annotations

import numpy as np
import torch

from conddiff import attention as attn_lib
from conddiff.blending import ClassifierFreeGuidance, ComposableDiffusion
from conddiff.classifier import ATTRIBUTES, AttributeClassifier, parse_prompt, read_scenes
from conddiff.correction import ILVR, RePaint
from conddiff.data import DataConfig, to_tensor, to_uint8
from conddiff.guidance import ClassifierGuidance, LossGuidance, measurement_norm
from conddiff.inversion import DDIMInversion, SDEdit
from conddiff.revising import DDNM, Inpainting, SuperResolution
from conddiff.sampler import sample
from conddiff.text import tokenize
from shared.data import shapes_world as sw
from shared.metrics import psnr, ssim


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def single_object_prompts(n: int, seed: int) -> tuple[list[str], sw.ShapesBatch]:
    batch = sw.generate(n, seed, min_objects=1, max_objects=1, jitter=0)
    return batch.captions, batch


@torch.no_grad()
def judge_images(judge: AttributeClassifier, images: torch.Tensor, prompts: list[str]) -> dict[str, float]:
    """Fraction of images whose judged attribute equals the prompt's, per attribute (+ 'all' = every one)."""
    logits = judge(images.to(next(judge.parameters()).device).clamp(-1, 1))
    wanted = [parse_prompt(p) for p in prompts]
    hits = {}
    for attr in ATTRIBUTES:
        pred = logits[attr].argmax(1).cpu()
        hits[attr] = torch.tensor([int(pred[i] == w[attr]) for i, w in enumerate(wanted)], dtype=torch.float)
    out = {k: float(v.mean()) for k, v in hits.items()}
    out["all"] = float(torch.stack(list(hits.values())).prod(0).mean())
    return out


def _mean_metric(fn, a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """A shared.metrics image metric averaged over the batch, on [0, 1] images (B, 3, H, W)."""
    a01, b01 = ((a.clamp(-1, 1) + 1) / 2).cpu().numpy(), ((b.clamp(-1, 1) + 1) / 2).cpu().numpy()
    m = None if mask is None else mask.reshape(len(a01), *a01.shape[-2:]).cpu().numpy().astype(bool)
    vals = []
    for i in range(len(a01)):
        kw = {} if m is None else {"mask": m[i]}
        vals.append(fn(np.moveaxis(a01[i], 0, -1), np.moveaxis(b01[i], 0, -1), data_range=1.0, **kw))
    vals = [v for v in vals if np.isfinite(v)]
    return float(np.mean(vals)) if vals else float("inf")


def text_to_image(pipe, judge, n: int, seed: int, steps: int, cfg_scales=(1.0, 3.0), noisy_classifier=None,
                  guidance_scales=()) -> tuple[dict, dict]:
    """Attribute accuracy per CFG scale (and per classifier-guidance scale at CFG 1)."""
    prompts, _ = single_object_prompts(n, seed)
    results, images = {}, {}
    for s in cfg_scales:
        x = sample(pipe, prompts, steps=steps, blending=ClassifierFreeGuidance(s), generator=gen(seed))
        results[f"cfg {s:g}"] = judge_images(judge, pipe.decode(x), prompts)
        images[f"cfg {s:g}"] = pipe.decode(x)
    if noisy_classifier is not None:
        targets = {k: torch.tensor([parse_prompt(p)[k] for p in prompts]) for k in ("shape", "colour")}
        for g in guidance_scales:
            x = sample(pipe, prompts, steps=steps, blending=ClassifierFreeGuidance(1.0),
                       guidance=[ClassifierGuidance(noisy_classifier, targets, g)], generator=gen(seed))
            results[f"cfg 1 + classifier guidance {g:g}"] = judge_images(judge, pipe.decode(x), prompts)
            images[f"classifier guidance {g:g}"] = pipe.decode(x)
    return results, images


def inversion_reconstruction(pipe, n: int, seed: int, steps: int, sdedit_strengths=(0.3, 0.6)) -> tuple[dict, dict]:
    """PSNR of invert -> regenerate (DDIM inversion, CFG 1) vs a fresh sample and SDEdit, against the source."""
    prompts, batch = single_object_prompts(n, seed)
    src = to_tensor(batch.images).to(pipe.device)
    out, images = {}, {"source": src}
    inv = DDIMInversion(src, prompts)
    x = sample(pipe, prompts, steps=steps, inversion=inv, clip_x0=False)  # clipping would break the inverse
    out["DDIM inversion"] = {"psnr": _mean_metric(psnr, pipe.decode(x), src),
                             "ssim": _mean_metric(ssim, pipe.decode(x), src)}
    images["DDIM inversion"] = pipe.decode(x)
    for s in sdedit_strengths:
        x = sample(pipe, prompts, steps=steps, inversion=SDEdit(src, s), generator=gen(seed + 1))
        out[f"SDEdit t0={s:g}T"] = {"psnr": _mean_metric(psnr, pipe.decode(x), src),
                                    "ssim": _mean_metric(ssim, pipe.decode(x), src)}
        images[f"SDEdit {s:g}"] = pipe.decode(x)
    x = sample(pipe, prompts, steps=steps, generator=gen(seed + 2))
    out["fresh sample (no inversion)"] = {"psnr": _mean_metric(psnr, pipe.decode(x), src),
                                          "ssim": _mean_metric(ssim, pipe.decode(x), src)}
    images["fresh sample"] = pipe.decode(x)
    return out, images


def _hole_masks(batch: sw.ShapesBatch) -> torch.Tensor:
    """Known-pixel masks (B, 1, H, W): the object's bounding box grown by 2 px is unknown (the hole)."""
    m = torch.from_numpy(batch.masks[:, 0])
    grown = torch.nn.functional.max_pool2d(m.float()[:, None], 5, 1, padding=2)
    return 1 - grown


def _seam_band(known: torch.Tensor) -> torch.Tensor:
    """A 2-px band on both sides of the hole's border (where seams show)."""
    dil = torch.nn.functional.max_pool2d(1 - known, 5, 1, padding=2)
    ero = 1 - torch.nn.functional.max_pool2d(known, 5, 1, padding=2)
    return (dil - ero).clamp(0, 1)


def inpainting(pipe, n: int, seed: int, steps: int, repaint_jumps=(5, 5)) -> tuple[dict, dict]:
    """Fill the object's hole from the prompt: replacement (Score-SDE) vs RePaint resampling vs DDNM."""
    prompts, batch = single_object_prompts(n, seed)
    src = to_tensor(batch.images).to(pipe.device)
    known = _hole_masks(batch).to(pipe.device)
    hole, band = 1 - known, _seam_band(known)
    cfg = ClassifierFreeGuidance(3.0)
    runs = {
        "replacement (no resampling)": dict(correction=[RePaint(src, known, jump_length=1, jump_n_sample=1)]),
        f"RePaint (j={repaint_jumps[0]}, r={repaint_jumps[1]})": dict(
            correction=[RePaint(src, known, jump_length=repaint_jumps[0], jump_n_sample=repaint_jumps[1])]),
        "DDNM": dict(process=DDNM(Inpainting(known), Inpainting(known).A(src)), eta=0.85),
    }
    out, images = {}, {"source": src, "masked input": src * known}
    for name, kw in runs.items():
        x = pipe.decode(sample(pipe, prompts, steps=steps, blending=cfg, generator=gen(seed), **kw))
        out[name] = {"psnr_hole": _mean_metric(psnr, x, src, hole), "ssim": _mean_metric(ssim, x, src),
                     "psnr_seam": _mean_metric(psnr, x, src, band),
                     "known_max_abs_err": float(((x - src) * known).abs().max())}
        images[name] = x
    return out, images


def super_resolution(pipe, n: int, seed: int, steps: int, dps_zeta: float = 1.0) -> tuple[dict, dict]:
    """2x super-resolution (16 -> 32) of renders, prompt given: upsampling vs ILVR vs DDNM vs DPS."""
    prompts, batch = single_object_prompts(n, seed)
    src = to_tensor(batch.images).to(pipe.device)
    op = SuperResolution(2)
    y = op.A(src)
    cfg = ClassifierFreeGuidance(3.0)
    candidates = {"nearest upsampling (A†y)": op.A_pinv(y)}
    candidates["ILVR (N=2)"] = pipe.decode(sample(pipe, prompts, steps=steps, blending=cfg,
                                                  correction=[ILVR(op.A_pinv(y), 2)], generator=gen(seed)))
    candidates["DDNM"] = pipe.decode(sample(pipe, prompts, steps=steps, blending=cfg, process=DDNM(op, y),
                                            eta=0.85, generator=gen(seed)))
    candidates["DPS"] = pipe.decode(sample(pipe, prompts, steps=steps, blending=cfg, eta=1.0,
                                           guidance=[LossGuidance(measurement_norm(op, y), dps_zeta)],
                                           generator=gen(seed)))
    out = {k: {"psnr": _mean_metric(psnr, v, src), "ssim": _mean_metric(ssim, v, src),
               "consistency_l2": float((op.A(v) - y).flatten(1).norm(dim=1).mean())} for k, v in candidates.items()}
    return out, {"source": src, **candidates}


def p2p_editing(pipe, judge, n: int, seed: int, steps: int, cfg_scale: float = 3.0) -> tuple[dict, dict]:
    """Colour swap on DDIM-inverted renders: P2P word swap (+ local blend) vs regeneration with the new prompt.

    Both start from the same inverted x_T; the source branch reconstructs. Scores: the judged colour equals
    the target colour, the other attributes keep the source's, background PSNR outside the true object mask.
    """
    src_prompts, batch = single_object_prompts(n, seed)
    rng = np.random.default_rng(seed)
    src = to_tensor(batch.images).to(pipe.device)
    tgt_prompts = []
    for i, p in enumerate(src_prompts):
        old = sw.COLOURS[batch.colour[i, 0]]
        new = str(rng.choice([c for c in sw.COLOURS if c != old]))
        tgt_prompts.append(p.replace(f" {old} ", f" {new} ", 1))
    background = torch.from_numpy(~batch.masks[:, 0])[:, None].to(pipe.device)
    pairs = [q for ab in zip(src_prompts, tgt_prompts) for q in ab]
    src2 = src.repeat_interleave(2, 0)
    ids = tokenize(pipe.tokenizer, pairs[:2])
    mapper = attn_lib.word_swap_mapper(ids[0].tolist(), ids[1].tolist())
    shape_token = 4  # <bos> a {size} {colour} {shape} ...: the object word, P2P's blend word
    out, images = {}, {"source": src}
    for name, controller in {
        "regenerate with the edited prompt": None,
        "P2P word swap": attn_lib.PromptToPrompt("replace", mapper=mapper),
        "P2P word swap + local blend": attn_lib.PromptToPrompt("replace", mapper=mapper,
                                                               blend_tokens=([shape_token], [shape_token])),
    }.items():
        inv = DDIMInversion(src2, [p for p in pairs[0::2] for _ in (0, 1)])
        x = pipe.decode(sample(pipe, pairs, steps=steps, inversion=inv, attention=controller,
                               blending=ClassifierFreeGuidance(cfg_scale), clip_x0=False))
        edited = x[1::2]
        judged = judge_images(judge, edited, tgt_prompts)
        out[name] = {"target_colour_acc": judged["colour"],
                     "kept_shape_acc": judged["shape"], "kept_position_acc": judged["position"],
                     "background_psnr": _mean_metric(psnr, edited, src, background),
                     "source_branch_psnr": _mean_metric(psnr, x[0::2], src)}
        images[name] = edited
    return out, images


def composition(pipe, scene_judge, n: int, seed: int, steps: int, weight: float = 3.0,
                counts: tuple[int, ...] = (2, 3)) -> tuple[dict, dict]:
    """Multi-object prompts (2 and 3 objects): one prompt naming every object (CFG ``weight``) vs composable
    diffusion AND over one single-object concept per object (same background; weight ``weight`` each).

    The scene judge reads each slot; an object is right when its slot holds an object of the prompted shape and
    colour ("+size": also the size); "all objects" when every object is right; "no extra" when every other slot
    is empty. ``n`` prompts per object count."""
    out, images = {}, {}
    rows = {"real renders (judge upper bound)": {}, "one prompt naming all (CFG)": {}, "composable diffusion AND": {}}
    for c in counts:
        batch = sw.generate(n, seed + 97 * c, min_objects=c, max_objects=c, jitter=0)
        scenes = batch.scenes()
        concepts = [[sw.Scene(s.background, (s.objects[k],)).caption() for s in scenes] for k in range(c)]
        runs = {
            "one prompt naming all (CFG)": ClassifierFreeGuidance(weight),
            "composable diffusion AND": ComposableDiffusion(concepts, [weight] * c),
        }
        for name, blending in [("real renders (judge upper bound)", None), *runs.items()]:
            if blending is None:
                x = to_tensor(batch.images).to(pipe.device)
            else:
                x = pipe.decode(sample(pipe, batch.captions, steps=steps, blending=blending, generator=gen(seed + c)))
            reads = read_scenes(scene_judge, x)
            obj_ok, obj_size_ok, all_ok, extra_ok = [], [], [], []
            for s, r in zip(scenes, reads):
                want = {o.position: o for o in s.objects}
                oks = []
                for p, o in want.items():
                    got = r["objects"][p]
                    ok = got is not None and got["shape"] == o.shape and got["colour"] == o.colour
                    oks.append(ok)
                    obj_size_ok.append(ok and got["size"] == o.size)
                obj_ok += oks
                all_ok.append(all(oks))
                extra_ok.append(all(r["objects"][p] is None for p in sw.POSITIONS if p not in want))
            rows[name].update({f"object_acc_{c}": float(np.mean(obj_ok)), f"object_size_acc_{c}": float(
                np.mean(obj_size_ok)), f"all_objects_{c}": float(np.mean(all_ok)),
                f"no_extra_{c}": float(np.mean(extra_ok))})
            if blending is not None:
                images[f"{name.split(' (')[0]}, {c} objects"] = x
    out.update(rows)
    return out, images


def prompt_following_score(pipe, judge_path: str, n: int, cfg_scale: float, steps: int, seed: int,
                           data: DataConfig | None = None) -> dict:
    """train.py's headline: judged attribute accuracy of n CFG samples of single-object prompts."""
    judge = AttributeClassifier.load(judge_path, pipe.device)
    prompts, _ = single_object_prompts(n, 10_000 + seed)
    x = sample(pipe, prompts, steps=steps, blending=ClassifierFreeGuidance(cfg_scale), generator=gen(seed))
    acc = judge_images(judge, pipe.decode(x), prompts)
    return {f"{k}_acc@cfg{cfg_scale:g}": v for k, v in acc.items()}


def image_grid(rows: dict[str, torch.Tensor], path, max_cols: int = 8) -> None:
    """Save a labelled grid (one row per entry, images in [-1, 1]) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(max_cols, min(len(v) for v in rows.values()))
    fig, axes = plt.subplots(len(rows), cols, figsize=(1.1 * cols + 1.6, 1.15 * len(rows)), squeeze=False)
    for r, (name, imgs) in enumerate(rows.items()):
        u8 = to_uint8(imgs[:cols])
        for c in range(cols):
            ax = axes[r][c]
            ax.imshow(u8[c], interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
        axes[r][0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run_applications(pipe, judge, noisy_classifier, n: int, steps: int, seed: int, sweep: bool = False,
                     repaint_jumps=(5, 3), scene_judge=None, quiet: bool = False) -> tuple[dict, dict]:
    """Every application once (``sweep``: also the CFG / guidance / SDEdit sweeps of reproduce.py), with a
    progress bar over the applications (off with ``quiet`` or when not a TTY)."""
    from shared.runs import progress

    apps = {
        "text_to_image": lambda: text_to_image(
            pipe, judge, n, seed, steps, cfg_scales=(1.0, 3.0, 5.0) if sweep else (1.0, 3.0),
            noisy_classifier=noisy_classifier, guidance_scales=(0.0, 2.0, 5.0) if sweep else (2.0,)),
        "inversion": lambda: inversion_reconstruction(pipe, n, seed + 1, steps,
                                                      sdedit_strengths=(0.3, 0.5, 0.7) if sweep else (0.5,)),
        "inpainting": lambda: inpainting(pipe, n, seed + 2, steps, repaint_jumps),
        "super_resolution": lambda: super_resolution(pipe, n, seed + 3, steps),
        "editing": lambda: p2p_editing(pipe, judge, n, seed + 4, steps),
    }
    if scene_judge is not None:
        apps["composition"] = lambda: composition(pipe, scene_judge, n, seed + 5, steps)
    results, grids = {}, {}
    for name in progress(list(apps), total=len(apps), desc="applications", quiet=quiet):
        results[name], grids[name] = apps[name]()
    return results, grids
