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
from conddiff.classifier import ATTRIBUTES, AttributeClassifier, parse_prompt
from conddiff.correction import ILVR, RePaint
from conddiff.data import DataConfig, to_tensor, to_uint8
from conddiff.guidance import ClassifierGuidance, LossGuidance, measurement_norm
from conddiff.inversion import SDEdit, DDIMInversion
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


def composition(pipe, n: int, seed: int, steps: int, weight: float = 3.0) -> tuple[dict, dict]:
    """Two objects from single-object concepts: composable diffusion AND vs one prompt naming both.

    A concept is present when its colour is the most frequent palette colour (>= 8 pixels within RGB distance
    60) in its half of the image (left / right)."""
    rng = np.random.default_rng(seed)
    shapes = rng.choice(sw.SHAPES, (n, 2))
    cols = np.array([rng.choice(sw.COLOURS, 2, replace=False) for _ in range(n)])
    bgs = rng.choice(["black", "gray"], n)
    left = [f"a big {c[0]} {s[0]} on the left on a {b} background" for s, c, b in zip(shapes, cols, bgs)]
    right = [f"a big {c[1]} {s[1]} on the right on a {b} background" for s, c, b in zip(shapes, cols, bgs)]
    both = [f"a big {c[0]} {s[0]} on the left and a big {c[1]} {s[1]} on the right on a {b} background"
            for s, c, b in zip(shapes, cols, bgs)]
    out, images = {}, {}

    palette = sw.COLOUR_RGB.astype(np.int32)

    def present(img: torch.Tensor) -> dict:
        u8 = to_uint8(img).astype(np.int32)  # (B, H, W, 3)
        half = u8.shape[2] // 2
        # nearest palette colour of every pixel (within distance 60, else none)
        d = np.sqrt(((u8[..., None, :] - palette) ** 2).sum(-1))  # (B, H, W, 5)
        label = np.where(d.min(-1) < 60, d.argmin(-1), -1)
        ok = np.zeros((len(u8), 2), bool)
        for i in range(len(u8)):
            for s, side in enumerate((slice(0, half), slice(half, None))):
                counts = np.bincount(label[i][:, side][label[i][:, side] >= 0], minlength=len(palette))
                target = sw.COLOURS.index(cols[i][s])
                ok[i, s] = counts[target] >= 8 and counts[target] == counts.max()
        return {"left_present": float(ok[:, 0].mean()), "right_present": float(ok[:, 1].mean()),
                "both_present": float(ok.all(1).mean())}

    # one prompt naming both objects (out of the single-object training distribution), CFG
    x = pipe.decode(sample(pipe, both, steps=steps, blending=ClassifierFreeGuidance(weight), generator=gen(seed)))
    out["one prompt naming both (CFG)"], images["one prompt"] = present(x), x
    comp = ComposableDiffusion([left, right], [weight, weight])  # per-sample concept prompts
    x = pipe.decode(sample(pipe, both, steps=steps, blending=comp, generator=gen(seed)))
    out["composable diffusion AND"], images["composable AND"] = present(x), x
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
                     repaint_jumps=(5, 3)) -> tuple[dict, dict]:
    """Every application once (``sweep``: also the CFG / guidance / SDEdit sweeps of reproduce.py)."""
    results, grids = {}, {}
    results["text_to_image"], grids["text_to_image"] = text_to_image(
        pipe, judge, n, seed, steps, cfg_scales=(1.0, 3.0, 5.0) if sweep else (1.0, 3.0),
        noisy_classifier=noisy_classifier, guidance_scales=(0.0, 2.0, 5.0) if sweep else (2.0,))
    results["inversion"], grids["inversion"] = inversion_reconstruction(
        pipe, n, seed + 1, steps, sdedit_strengths=(0.3, 0.5, 0.7) if sweep else (0.5,))
    results["inpainting"], grids["inpainting"] = inpainting(pipe, n, seed + 2, steps, repaint_jumps)
    results["super_resolution"], grids["super_resolution"] = super_resolution(pipe, n, seed + 3, steps)
    results["editing"], grids["editing"] = p2p_editing(pipe, judge, n, seed + 4, steps)
    results["composition"], grids["composition"] = composition(pipe, n, seed + 5, steps)
    return results, grids
