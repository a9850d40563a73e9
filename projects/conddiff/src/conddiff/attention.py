"""Mechanism 2 -- attention manipulation (survey Sec. 4.2): Prompt-to-Prompt through diffusers attention processors.

Prompt-to-Prompt (Hertz et al. 2022) edits an image by generating the source prompt and the edited prompt
together and, in the edited branch, replacing its cross-attention maps M_t = softmax(QKᵀ/√d) by an edit of
the source branch's maps M*_t:

* word swap (replace): (M_t)_{i,j} ← Σ_k (M*_t)_{i,k} W_{k,j} for steps t in the first ``cross_replace_steps``
  fraction, W the token alignment (identity except at the swapped words); also self-attention maps are
  replaced for the first ``self_replace_steps`` fraction;
* refinement (refine): (M_t)_{i,j} ← (M*_t)_{i,A(j)} for target tokens j aligned to a source token A(j), the
  target's own map for new tokens;
* re-weighting (reweight): (M_t)_{i,j} ← c_j (M*_t)_{i,j} (a scale c for the chosen words);
* local blend: m = threshold(normalised max-pooled mean cross-attention of the blend words of both prompts),
  x_{t-1}^tgt ← x_{t-1}^src + m ⊙ (x_{t-1}^tgt - x_{t-1}^src).

As in the official code, only the conditional half of a classifier-free-guidance batch is edited, and
branch pairs are laid out [source, target] in the batch. With no edit requested (:class:`AttentionStore`),
the processors compute exactly what diffusers' ``AttnProcessor`` computes.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F


class ControlledAttnProcessor:
    """diffusers ``AttnProcessor`` with a hook on the attention probabilities (``controller(probs, ...)``).

    Subclasses may also edit the queries, keys and values before the scores (:meth:`edit_qkv`; projects/multiedits
    exchanges them between branches); here they pass through unchanged.
    """

    def __init__(self, controller, place: str):
        self.controller, self.place = controller, place

    def edit_qkv(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, is_cross: bool,
                 heads: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B * heads, L, d) queries, keys and values -> the ones attention uses (identity here)."""
        return query, key, value

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs):
        is_cross = encoder_hidden_states is not None
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            b, c, h, w = hidden_states.shape
            hidden_states = hidden_states.view(b, c, h * w).transpose(1, 2)
        batch, seq_len, _ = hidden_states.shape if encoder_hidden_states is None else encoder_hidden_states.shape
        attention_mask = attn.prepare_attention_mask(attention_mask, seq_len, batch)
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        query = attn.to_q(hidden_states)
        if encoder_hidden_states is None:
            encoder_hidden_states = hidden_states
        elif attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        key, value = attn.to_k(encoder_hidden_states), attn.to_v(encoder_hidden_states)
        query, key, value = (attn.head_to_batch_dim(v) for v in (query, key, value))
        query, key, value = self.edit_qkv(query, key, value, is_cross, attn.heads)
        probs = attn.get_attention_scores(query, key, attention_mask)  # (B * heads, queries, keys)
        probs = self.controller(probs, is_cross, self.place, attn.heads)
        hidden_states = attn.batch_to_head_dim(torch.bmm(probs, value))
        hidden_states = attn.to_out[1](attn.to_out[0](hidden_states))
        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(b, c, h, w)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor


def install(unet, controller) -> dict:
    """Route every attention layer of ``unet`` through ``controller``; returns the previous processors."""
    previous = dict(unet.attn_processors)
    unet.set_attn_processor({name: ControlledAttnProcessor(controller, place_of(name)) for name in previous})
    return previous


def place_of(processor_name: str) -> str:
    """"down", "mid" or "up": the UNet part an attention processor's name belongs to."""
    return "down" if processor_name.startswith("down") else "up" if processor_name.startswith("up") else "mid"


class AttentionStore:
    """Records the conditional cross-attention maps of each step (no edit): the P2P base controller."""

    def __init__(self):
        self.step, self.num_steps, self.step_maps, self.cfg_doubled = 0, 1, [], False

    @property
    def controller(self):  # the sampler's attention slot installs this object in every processor
        return self

    def begin_step(self, ctx) -> None:
        self.step, self.num_steps, self.step_maps = ctx.step, ctx.num_steps, []

    def after_step(self, ctx, x_prev: torch.Tensor) -> torch.Tensor:
        return x_prev

    def edit(self, probs: torch.Tensor, is_cross: bool, place: str) -> torch.Tensor:
        return probs

    def __call__(self, probs: torch.Tensor, is_cross: bool, place: str, heads: int) -> torch.Tensor:
        batch = probs.shape[0] // heads
        p = probs.view(batch, heads, *probs.shape[1:])
        half = batch // 2 if getattr(self, "cfg_doubled", False) else 0  # edit the conditional half only
        cond = p[half:]
        if is_cross:  # stored before the edit, as the official AttentionControlEdit does
            self.step_maps.append(cond.detach())
        edited = self.edit(cond, is_cross, place)
        if edited is cond:
            return probs
        return torch.cat([p[:half], edited], 0).view_as(probs)

    def cross_attention(self, resolution: int | None = None) -> torch.Tensor:
        """Mean over layers and heads of this step's conditional cross-attention maps at the finest resolution
        that has them: (B, tokens, r, r)."""
        maps = [m for m in self.step_maps]
        res = resolution or max(int(round(m.shape[2] ** 0.5)) for m in maps)
        sel = [m.mean(1) for m in maps if m.shape[2] == res * res]  # (B, r*r, tokens)
        mean = torch.stack(sel).mean(0)
        return mean.permute(0, 2, 1).reshape(mean.shape[0], -1, res, res)


def word_swap_mapper(src_ids: list[int], tgt_ids: list[int]) -> torch.Tensor:
    """Token alignment W (L, L) of a word swap: identity; the prompts must have the same number of tokens."""
    if len(src_ids) != len(tgt_ids):
        raise ValueError("P2P word swap needs source and target prompts of equal token length "
                         f"({len(src_ids)} != {len(tgt_ids)}); use mode='refine' for insertions")
    return torch.eye(len(src_ids))


def refine_alignment(src_words: list[str], tgt_words: list[str], length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Refinement alignment: A (target token -> source token) from the longest matching word blocks, and
    α (1 where a target token is aligned, 0 for new words). Token 0 is <bos>; words start at token 1; the
    <eos> and padding after the words align with the source's <eos> and padding."""
    mapper, alpha = torch.zeros(length, dtype=torch.long), torch.zeros(length)
    mapper[0], alpha[0] = 0, 1.0
    for block in difflib.SequenceMatcher(a=src_words, b=tgt_words, autojunk=False).get_matching_blocks():
        for k in range(block.size):
            mapper[block.b + k + 1], alpha[block.b + k + 1] = block.a + k + 1, 1.0
    n, m = len(src_words), len(tgt_words)
    for k in range(m + 1, length):
        mapper[k], alpha[k] = min(n + 1 + (k - m - 1), length - 1), 1.0
    return mapper, alpha


@dataclass
class PromptToPrompt(AttentionStore):
    """Prompt-to-Prompt edit controller for batches laid out [source, target] * pairs (conditional half).

    Args:
        mode: "replace" (word swap), "refine" (inserted / removed words) or "reweight".
        mapper / alpha: the token alignment (from :func:`word_swap_mapper` / :func:`refine_alignment`).
        cross_replace_steps, self_replace_steps: fractions of the sampling steps with cross / self-attention
            injection (official defaults on PIE-Bench: 0.4 and 0.6).
        equalizer: per-token scale c (L,) for "reweight" (1 elsewhere).
        blend_tokens: token positions of the local-blend words in each prompt ([src positions], [tgt positions]);
            empty for no local blend. blend_threshold: 0.3 as the official code.
    """

    mode: str = "replace"
    mapper: torch.Tensor | None = None
    alpha: torch.Tensor | None = None
    cross_replace_steps: float = 0.4
    self_replace_steps: float = 0.6
    equalizer: torch.Tensor | None = None
    blend_tokens: tuple[list[int], list[int]] = field(default_factory=lambda: ([], []))
    blend_threshold: float = 0.3
    blend_pool: int = 1
    start_blend: float = 0.2

    def __post_init__(self):
        AttentionStore.__init__(self)
        if self.mode not in ("replace", "refine", "reweight"):
            raise ValueError(f"unknown P2P mode {self.mode!r}; expected 'replace', 'refine' or 'reweight'")

    def _cross_active(self) -> bool:
        return self.step < self.cross_replace_steps * self.num_steps

    def _self_active(self) -> bool:
        return self.step < self.self_replace_steps * self.num_steps

    def edit(self, p: torch.Tensor, is_cross: bool, place: str) -> torch.Tensor:
        """p: (B, heads, queries, keys) conditional maps, B = 2 * pairs laid out [src, tgt]."""
        pairs = p.view(-1, 2, *p.shape[1:])
        base, target = pairs[:, 0], pairs[:, 1]
        if is_cross and self._cross_active():
            new = self.edit_cross(base, target)
        elif not is_cross and self._self_active():
            new = base  # self-attention injection: the source's maps
        else:
            return p
        return torch.stack([base, new], 1).view_as(p)

    def edit_cross(self, base: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Edit(M_t, M*_t) of the survey's Sec. 4.2 for the three P2P modes."""
        if self.mode == "replace":  # (M*_t W): maps follow the source's layout, token by token
            return torch.einsum("bhqk,kl->bhql", base, self.mapper.to(base))
        if self.mode == "refine":  # aligned tokens take the source's map, new tokens keep their own
            alpha = self.alpha.to(base)
            return base[..., self.mapper] * alpha + target * (1 - alpha)
        return base * self.equalizer.to(base)  # reweight: scale the chosen tokens' maps of the source

    def after_step(self, ctx, x_prev: torch.Tensor) -> torch.Tensor:
        """P2P's step callback: local blend once ``start_blend`` of the steps are done."""
        return self.local_blend(x_prev) if self.step >= self.start_blend * self.num_steps else x_prev

    def local_blend(self, x_prev: torch.Tensor) -> torch.Tensor:
        """x_tgt ← x_src + m ⊙ (x_tgt - x_src), m from both prompts' blend-word attention (union)."""
        src_tok, tgt_tok = self.blend_tokens
        if not src_tok and not tgt_tok:
            return x_prev
        maps = self.cross_attention()  # (B, tokens, r, r)
        pairs = maps.view(-1, 2, *maps.shape[1:])
        mask = blend_mask(pairs[:, 0, src_tok].sum(1, keepdim=True), pairs[:, 1, tgt_tok].sum(1, keepdim=True),
                          x_prev.shape[-2:], self.blend_threshold, self.blend_pool)
        self.last_mask = mask
        x = x_prev.view(-1, 2, *x_prev.shape[1:])
        tgt = x[:, 0] + mask * (x[:, 1] - x[:, 0])
        return torch.stack([x[:, 0], tgt], 1).view_as(x_prev)


def blend_mask(src_map: torch.Tensor, tgt_map: torch.Tensor, size, threshold: float, pool: int) -> torch.Tensor:
    """P2P LocalBlend mask: max-pool, upsample, normalise by the max, threshold; union of source and target."""
    def one(m):
        m = F.max_pool2d(m, 2 * pool + 1, 1, padding=pool)
        m = F.interpolate(m, size=tuple(size))
        m = m / m.amax(dim=(2, 3), keepdim=True).clamp_min(1e-12)
        return m.gt(threshold)
    return (one(src_map) | one(tgt_map)).to(src_map.dtype)
