"""ParallelEdits (Sec. 4.2) and the two baselines it is compared with, on any ``conddiff.pipeline.Pipeline``.

* :func:`parallel_edit` -- the method: a short first pass collects cross-attention maps, the aspects are grouped
  into branches (:mod:`multiedits.grouping`), then all branches are denoised together, one batched UNet call per
  step, with the inversion-free DDCM update (:mod:`multiedits.ddcm`) and cross-branch attention control and
  local blend (:mod:`multiedits.attention`).
* :func:`single_branch_edit` -- InfEdit / ablation: all aspects in one branch on the full target prompt.
* :func:`sequential_edit` -- the same single-aspect editor (ParallelEdits with one aspect = InfEdit's editor)
  applied once per aspect, each edit starting from the previous result.
* :func:`p2p_edit` -- Prompt-to-Prompt with DDIM inversion on the full target prompt in one pass (``conddiff``'s
  sampler and P2P controller).

Images are float (1, 3, H, W) in [-1, 1]; a Stable Diffusion pipeline works in its VAE latent space through
``pipe.encode`` / ``pipe.decode``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from dataclasses import dataclass, field

import torch

from conddiff import attention as p2p
from conddiff.blending import ClassifierFreeGuidance
from conddiff.inversion import DDIMInversion
from conddiff.pipeline import Pipeline
from conddiff.sampler import ddim_grid, sample
from multiedits import attention as ma
from multiedits.ddcm import anchors, ddcm_step
from multiedits.grouping import Aspect, Branch, apply_edits, group_aspects, word_maps, word_token_indices


@dataclass
class EditConfig:
    """ParallelEdits' demo hyper-parameters (official ``Edit_demo.ipynb``)."""

    steps: int = 15
    grouping_steps: int = 5  # the short first pass that collects attention maps
    guidance_t: float = 3.0  # CFG of the edit branches
    guidance_s: float = 1.0  # CFG of the source and mutual branches
    eta: float = 1.0
    cross_replace_steps: float = 0.7
    self_replace_steps: float = 0.7
    thresh_e: float = 0.5
    thresh_m: float = 0.8
    warmup_steps: int = 6  # anchors on the source up to this step (official `i <= 6`)
    local_blend: bool = True
    clip_x0: bool | None = None  # clip x̂_0 to [-1, 1]: default on for pixel-space models, off for latent ones
    # which branches get self-attention control (multiedits.attention.self_attn_list): "official_list" (the
    # demo's computed list: rigid branches uncontrolled), "demo" (its hard-coded [1, 0]), "rigid", "none"
    self_attn_rule: str = "official_list"


@dataclass
class P2PConfig:
    """Prompt-to-Prompt + DDIM inversion as PIE-Bench runs it (50 steps, CFG 7.5 on SD 1.4; see the README)."""

    steps: int = 20
    guidance: float = 3.0
    cross_replace_steps: float = 0.4
    self_replace_steps: float = 0.6
    local_blend: bool = True


@dataclass
class EditResult:
    """The edited image, the per-branch images, the branches, and the cost (UNet calls, images, seconds)."""

    image: torch.Tensor
    branch_images: torch.Tensor
    branches: list[Branch]
    unet_calls: int
    unet_images: int
    seconds: float
    extras: dict = field(default_factory=dict)


@contextlib.contextmanager
def count_unet(unet):
    """Count UNet forward calls and the images they process (NFE) inside the block."""
    counts = {"calls": 0, "images": 0}

    def hook(_module, args, kwargs):
        counts["calls"] += 1
        counts["images"] += int((args[0] if args else kwargs["sample"]).shape[0])

    handle = unet.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield counts
    finally:
        handle.remove()


def _timesteps(pipe: Pipeline, steps: int) -> list[int]:
    """Descending timesteps: LCM's schedule for an LCM folder (official ``set_timesteps(steps,
    original_inference_steps=50)``), else the scheduler's own ``set_timesteps`` (DDIM: evenly spaced)."""
    sched = pipe.scheduler
    # an LCM folder (the paper's LCM_Dreamshaper_v7): its scheduler config keeps LCM's keys even when loaded as DDIM
    if sched.config.get("_class_name") == "LCMScheduler" or "original_inference_steps" in sched.config:
        from diffusers import LCMScheduler

        lcm = LCMScheduler.from_config(sched.config)
        lcm.set_timesteps(steps, original_inference_steps=50)  # the official call
        return [int(t) for t in lcm.timesteps]
    try:
        sched.set_timesteps(steps)
        return [int(t) for t in sched.timesteps]
    except (AttributeError, TypeError, ValueError):
        return ddim_grid(sched.config.num_train_timesteps, steps)[::-1]


@torch.no_grad()
def multi_branch_edit(pipe: Pipeline, image: torch.Tensor, source_prompt: str, branches: list[Branch],
                      cfg: EditConfig, generator: torch.Generator, steps: int | None = None,
                      local_blend: bool | None = None) -> tuple[torch.Tensor, ma.MultiBranchController]:
    """Denoise all branches in one batched UNet call per step (official ``EditAllPipeline.__call__``).

    Returns the x̂_0 of every branch (N, C, h, w) in the diffusion space (the last branch is the full edit) and the
    controller (its accumulated attention maps feed the aspect grouping).
    """
    steps = steps or cfg.steps
    blend = cfg.local_blend if local_blend is None else local_blend
    device, n = pipe.device, len(branches)
    clean = pipe.encode(image.to(device))
    clip = (pipe.vae is None) if cfg.clip_x0 is None else cfg.clip_x0
    length = pipe.tokenizer.model_max_length
    controlled = ma.self_controlled([b.shape_change for b in branches], cfg.self_attn_rule)
    controls = [ma.branch_control(pipe.tokenizer, b.base_prompt, b.prompt, b.shape_change, b.local_words, [], length,
                                  self_control=c) for b, c in zip(branches, controlled)]
    controller = ma.MultiBranchController(controls, steps, cfg.cross_replace_steps, cfg.self_replace_steps,
                                          cfg.thresh_e, cfg.thresh_m)
    cond_prompts = [source_prompt] + [p for b in branches for p in (b.prompt, b.base_prompt)]
    emb = pipe.encode_prompts([""] * len(cond_prompts) + cond_prompts)
    guidance = torch.tensor([cfg.guidance_s] + [g for _ in branches for g in (cfg.guidance_t, cfg.guidance_s)],
                            device=device, dtype=clean.dtype).view(-1, 1, 1, 1)
    timesteps = _timesteps(pipe, steps)
    abar = pipe.alphas_cumprod
    # strength 1 (official denoise=False): every branch starts from the same pure noise
    x_T = torch.randn(clean.shape, generator=generator).to(device, clean.dtype)
    source, states, mutual = x_T, x_T.repeat(n, 1, 1, 1), x_T.repeat(n, 1, 1, 1)
    states_x0, mutual_x0 = clean.repeat(n, 1, 1, 1), clean.repeat(n, 1, 1, 1)
    previous = ma.install(pipe.unet, controller)
    try:
        for i, t in enumerate(timesteps):
            controller.step = i
            rows = torch.cat([source] + [x for j in range(n) for x in (states[j:j + 1], mutual[j:j + 1])])
            eps_u, eps_c = pipe.eps(torch.cat([rows, rows]), int(t), emb).chunk(2)
            eps = eps_u + guidance * (eps_c - eps_u)
            e_s, e_t, e_m = eps[:1], eps[1::2], eps[2::2]
            noise = torch.randn((1, *clean.shape[1:]), generator=generator).to(device, clean.dtype).expand_as(states)
            a_t = float(abar[t])
            a_prev = float(abar[timesteps[i + 1]]) if i + 1 < len(timesteps) else 1.0
            xs_t, z0_t = anchors(i, states, states_x0, source, clean, cfg.warmup_steps)
            xs_m, z0_m = anchors(i, mutual, mutual_x0, source, clean, cfg.warmup_steps)
            out_t = ddcm_step(xs_t, states, e_s, e_t, z0_t, a_t, a_prev, noise, cfg.eta, clip_x0=clip)
            out_m = ddcm_step(xs_m, mutual, e_s, e_m, z0_m, a_t, a_prev, noise, cfg.eta, clip_x0=clip)
            states, states_x0 = out_t.x_tgt_prev, out_t.x0_tgt
            mutual, mutual_x0 = out_m.x_tgt_prev, out_m.x0_tgt
            source = out_m.x_src_prev[-1:]
            if blend and i > 0:  # the branches' step callbacks; branch j's x_s is branch j - 1 (before blending)
                last = i + 2 == len(timesteps)  # official `use_xm`: cur_step (already advanced) + 1 == num_steps
                states = torch.cat([controller.local_blend(j, source if j == 0 else states[j - 1:j],
                                                           states[j:j + 1], mutual[j:j + 1], a_t, last)
                                    for j in range(n)])
    finally:
        pipe.unet.set_attn_processor(previous)
    return states_x0, controller


@torch.no_grad()
def attention_maps(pipe: Pipeline, image: torch.Tensor, source_prompt: str, target_prompt: str, cfg: EditConfig,
                   generator: torch.Generator) -> tuple[dict, dict]:
    """The grouping pass: ``cfg.grouping_steps`` steps of the editor (source -> full target, one branch, no local
    blend); returns the per-word 0..255 maps of the source prompt (source branch) and of the target prompt."""
    kind = "rigid" if len(source_prompt.split()) == len(target_prompt.split()) else "non_rigid"
    branch = Branch([], kind, target_prompt, source_prompt)
    _, controller = multi_branch_edit(pipe, image, source_prompt, [branch], cfg, generator,
                                      steps=cfg.grouping_steps, local_blend=False)
    res = max(controller.raw_maps)
    raw = controller.raw_maps[res]  # (rows, r*r, L)
    maps = raw.permute(0, 2, 1).reshape(raw.shape[0], raw.shape[2], res, res)
    size = image.shape[-1]
    return (word_maps(maps[0], pipe.tokenizer, source_prompt, size),
            word_maps(maps[1], pipe.tokenizer, target_prompt, size))


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@torch.no_grad()
def parallel_edit(pipe: Pipeline, image: torch.Tensor, source_prompt: str, aspects: list[Aspect],
                  cfg: EditConfig, seed: int = 0) -> EditResult:
    """ParallelEdits: grouping pass, aspect grouping, then one multi-branch DDCM pass. Returns the last branch's
    image (the full edit) and every branch's image."""
    start = time.perf_counter()
    with count_unet(pipe.unet) as counts:
        target_prompt = apply_edits(source_prompt, aspects)
        src_maps, tgt_maps = attention_maps(pipe, image, source_prompt, target_prompt, cfg, _generator(seed))
        branches = group_aspects(source_prompt, aspects, src_maps, tgt_maps)
        x0, _ = multi_branch_edit(pipe, image, source_prompt, branches, cfg, _generator(seed))
        images = pipe.decode(x0)
    return EditResult(images[-1:], images, branches, counts["calls"], counts["images"], time.perf_counter() - start)


@torch.no_grad()
def single_branch_edit(pipe: Pipeline, image: torch.Tensor, source_prompt: str, aspects: list[Aspect],
                       cfg: EditConfig, seed: int = 0) -> EditResult:
    """Ablation / the InfEdit baseline: every aspect in one branch on the full target prompt (no grouping pass, no
    cross-branch interaction); word replacement when the word counts match, local blend on all edited words."""
    start = time.perf_counter()
    target_prompt = apply_edits(source_prompt, aspects)
    kind = "rigid" if len(source_prompt.split()) == len(target_prompt.split()) else "non_rigid"
    branch = Branch(list(aspects), kind, target_prompt, source_prompt, [w for a in aspects for w in a.key_words])
    with count_unet(pipe.unet) as counts:
        x0, _ = multi_branch_edit(pipe, image, source_prompt, [branch], cfg, _generator(seed))
        images = pipe.decode(x0)
    return EditResult(images, images, [branch], counts["calls"], counts["images"], time.perf_counter() - start)


def sequential_steps(source_prompt: str, aspects: list[Aspect]) -> list[tuple[str, Aspect, str]]:
    """(prompt before, the aspect re-positioned in that prompt, prompt after) for editing one aspect at a time."""
    out, prompt, shifted = [], source_prompt, list(aspects)
    for k in range(len(aspects)):
        a_k = shifted[k]
        after = apply_edits(prompt, [a_k])
        delta = len(after.split()) - len(prompt.split())
        shifted = [s if m <= k or s.position < a_k.position else dataclasses.replace(s, position=s.position + delta)
                   for m, s in enumerate(shifted)]
        out.append((prompt, a_k, after))
        prompt = after
    return out


@torch.no_grad()
def sequential_edit(pipe: Pipeline, image: torch.Tensor, source_prompt: str, aspects: list[Aspect],
                    cfg: EditConfig, seed: int = 0) -> EditResult:
    """The baseline of the paper's sequential (*) rows: the single-aspect editor applied once per aspect, in
    annotation order, each edit taking the previous result and prompt as its source."""
    start = time.perf_counter()
    current, images, branches, calls, imgs = image, [], [], 0, 0
    for k, (before, aspect, _after) in enumerate(sequential_steps(source_prompt, aspects)):
        res = parallel_edit(pipe, current, before, [aspect], cfg, seed + k)
        current = res.image
        images.append(res.image)
        branches += res.branches
        calls, imgs = calls + res.unet_calls, imgs + res.unet_images
    return EditResult(current, torch.cat(images), branches, calls, imgs, time.perf_counter() - start)


@torch.no_grad()
def p2p_edit(pipe: Pipeline, image: torch.Tensor, source_prompt: str, aspects: list[Aspect], cfg: P2PConfig,
             seed: int = 0) -> EditResult:
    """Prompt-to-Prompt on the full target prompt in one pass, from the DDIM inversion of the source image
    (word swap when the word counts match, else refinement; local blend on every aspect's words)."""
    start = time.perf_counter()
    target_prompt = apply_edits(source_prompt, aspects)
    length = pipe.tokenizer.model_max_length
    tok = pipe.tokenizer
    blend = ([], [])
    if cfg.local_blend:
        # PIE-Bench's blended_word (source noun, target noun) when the aspects know it, else their words
        src_words = {w for a in aspects for w in ([a.source_noun] if a.source_noun else a.source_words)}
        tgt_words = {w for a in aspects for w in a.key_words}
        blend = ([i for w, idx in word_token_indices(tok, source_prompt)
                  if w in src_words for i in idx],
                 [i for w, idx in word_token_indices(tok, target_prompt)
                  if w in tgt_words for i in idx])
    if len(source_prompt.split()) == len(target_prompt.split()):
        controller = p2p.PromptToPrompt("replace", mapper=ma.replacement_mapper(tok, source_prompt, target_prompt,
                                                                                length),
                                        cross_replace_steps=cfg.cross_replace_steps,
                                        self_replace_steps=cfg.self_replace_steps, blend_tokens=blend)
    else:
        mapper, alpha = p2p.refine_alignment(source_prompt.split(), target_prompt.split(), length)
        controller = p2p.PromptToPrompt("refine", mapper=mapper, alpha=alpha,
                                        cross_replace_steps=cfg.cross_replace_steps,
                                        self_replace_steps=cfg.self_replace_steps, blend_tokens=blend)
    with count_unet(pipe.unet) as counts:
        src2 = image.to(pipe.device).repeat(2, 1, 1, 1)
        inv = DDIMInversion(src2, [source_prompt, source_prompt])
        x = sample(pipe, [source_prompt, target_prompt], steps=cfg.steps, inversion=inv, attention=controller,
                   blending=ClassifierFreeGuidance(cfg.guidance), generator=_generator(seed), clip_x0=False)
        images = pipe.decode(x)
    return EditResult(images[1:], images[1:], [], counts["calls"], counts["images"], time.perf_counter() - start)

