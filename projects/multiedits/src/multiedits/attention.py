"""Cross-branch attention control (ParallelEdits Sec. 4.2.3) through diffusers attention processors.

The UNet sees one batch per step, laid out as the official ``EditAllPipeline`` does: an unconditional half and a
conditional half, each ``[S, B_0, M_0, B_1, M_1, ..., B_{N-1}, M_{N-1}]`` -- the source branch S (source prompt),
and for every edit branch j its state B_j (prompt P_j) and its "mutual" state M_j (prompt P_{j-1}, the source
prompt for j = 0). The base of branch j is S for j = 0 and B_{j-1} otherwise: branch j edits relative to the
previous branch, and the queries / keys / values / attention maps are exchanged between adjacent branches
(official ``register_attention_control_all``):

* **self-attention** (InfEdit's unified attention control, on the branches :func:`self_controlled` selects):
  for the first ``self_replace_steps`` of the schedule B_j takes the base's queries and keys (its own values)
  and M_j the base's queries, keys and values; afterwards M_j queries with B_j's queries into the base's keys
  and values (mutual self-attention), B_j is unchanged. Both CFG halves are controlled. Which branches: the
  official ``register_attention_control_all(..., self_attn_list)`` passes the branches **listed** in
  ``self_attn_list`` through *uncontrolled* and controls every other one. ``Edit_demo.ipynb`` computes
  ``self_attn_list = [i if i not in shape_change else None ...]`` (the rigid branches) but calls
  ``register_attention_control_all(pipe, controller, self_attn_list=[1, 0])``; our default
  (``rule="official_list"``) applies the computed list: rigid branches uncontrolled, shape-change branches
  (non-rigid and global) controlled; ``rule="demo"`` reproduces the hard-coded [1, 0] (branches 0 and 1
  uncontrolled, later ones controlled); ``rule="rigid"`` is this project's earlier reading (rigid controlled).
* **cross-attention** (conditional half): for the first ``cross_replace_steps`` B_j's maps are replaced by the
  base's maps mapped to P_j's tokens (P2P word swap, or refinement: aligned tokens take the base's map, new
  tokens keep their own). The base-derived and the mutual-derived maps are accumulated for the local blend.
* **local blend** (the branch's step callback): x ← where(mask_e, x_t, x_m), x ← where(mask_m, x_s, x) with
  mask_e from the mutual maps of the local (edited) words at threshold max(0.15 / √ᾱ_t, thresh_e), mask_m from
  the base maps of the kept ("mutual") words at thresh_m; at the last step where(mask_me, x_m, x) for words in
  both sets. Official thresholds thresh_e = 0.5, thresh_m = 0.8.

With no branch controlled (``enabled=False``) the processor computes exactly what diffusers' ``AttnProcessor``
computes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from conddiff.attention import ControlledAttnProcessor, place_of, refine_alignment
from multiedits.grouping import word_token_indices


@dataclass
class BranchControl:
    """How branch j is controlled. ``mode`` "replace" (equal word counts, rigid) or "refine";
    ``mapper`` (L, L) for replace or (L,) target -> base token for refine, ``alpha`` (L,) 1 for aligned tokens;
    ``local_tokens`` / ``mutual_tokens``: target-token indicators (L,) of the local-blend words."""

    mode: str
    mapper: torch.Tensor
    alpha: torch.Tensor | None
    self_control: bool
    local_tokens: torch.Tensor
    mutual_tokens: torch.Tensor
    n_tokens: int  # tokens of the branch prompt including <bos> and <eos> (official ``len``)


def replacement_mapper(tokenizer, base_prompt: str, prompt: str, length: int) -> torch.Tensor:
    """P2P word-swap token alignment W (L, L): word i of the base maps to word i of the target (equal word
    counts); a word of n tokens spreads its map uniformly over the other side's tokens; tokens after the last
    word (<eos>, padding) align in order."""
    a, b = word_token_indices(tokenizer, base_prompt), word_token_indices(tokenizer, prompt)
    if len(a) != len(b):
        raise ValueError(f"word swap needs equal word counts: {base_prompt!r} vs {prompt!r}")
    W = torch.zeros(length, length)
    W[0, 0] = 1.0
    for (_, ia), (_, ib) in zip(a, b):
        if len(ia) == len(ib):
            W[ia, ib] = 1.0
        else:
            for t in ib:
                W[ia, t] = 1.0 / len(ia)
    ea, eb = (a[-1][1][-1] + 1 if a else 1), (b[-1][1][-1] + 1 if b else 1)
    for k in range(length - max(ea, eb)):
        W[ea + k, eb + k] = 1.0
    return W


def token_indicator(tokenizer, prompt: str, words: list[str], length: int) -> torch.Tensor:
    """(L,) 1 at the tokens of the given words of ``prompt`` (every occurrence), else 0."""
    out = torch.zeros(length)
    for w, idx in word_token_indices(tokenizer, prompt):
        if w in words:
            out[idx] = 1.0
    return out


SELF_ATTN_RULES = ("official_list", "demo", "rigid", "none")


def self_attn_list(shape_change: list[bool], rule: str = "official_list") -> list[int]:
    """The official ``self_attn_list``: indices of the branches whose self-attention is left **uncontrolled**.

    ``official_list``: the list ``Edit_demo.ipynb`` computes, the non-shape-change (rigid) branches;
    ``demo``: the list its call hard-codes, [1, 0]; ``rigid``: the shape-change branches (rigid controlled);
    ``none``: every branch (no self-attention control).
    """
    n = len(shape_change)
    if rule == "official_list":
        return [i for i in range(n) if not shape_change[i]]
    if rule == "demo":
        return [i for i in (1, 0) if i < n]
    if rule == "rigid":
        return [i for i in range(n) if shape_change[i]]
    if rule == "none":
        return list(range(n))
    raise ValueError(f"unknown self-attention rule {rule!r}; expected one of {SELF_ATTN_RULES}")


def self_controlled(shape_change: list[bool], rule: str = "official_list") -> list[bool]:
    """Per branch: is its self-attention controlled (= not in :func:`self_attn_list`)?"""
    listed = set(self_attn_list(shape_change, rule))
    return [i not in listed for i in range(len(shape_change))]


def branch_control(tokenizer, base_prompt: str, prompt: str, shape_change: bool, local_words: list[str],
                   mutual_words: list[str], length: int, self_control: bool | None = None) -> BranchControl:
    """The official per-branch choice: word replacement when the prompts have equal word counts and the branch is
    not a shape change, else refinement. ``self_control`` (from :func:`self_controlled`; default: the
    ``official_list`` rule for a lone branch, i.e. controlled iff ``shape_change``)."""
    if self_control is None:
        self_control = shape_change
    n_tokens = len(tokenizer(prompt).input_ids)
    local = token_indicator(tokenizer, prompt, local_words, length)
    mutual = token_indicator(tokenizer, prompt, mutual_words, length)
    if len(base_prompt.split()) == len(prompt.split()) and not shape_change:
        return BranchControl("replace", replacement_mapper(tokenizer, base_prompt, prompt, length), None,
                             self_control, local, mutual, n_tokens)
    mapper, alpha = refine_alignment(base_prompt.split(), prompt.split(), length)
    return BranchControl("refine", mapper, alpha, self_control, local, mutual, n_tokens)


@dataclass
class MultiBranchController:
    """State shared by all attention processors of one multi-branch edit (see the module docstring)."""

    branches: list[BranchControl]
    num_steps: int
    cross_replace_steps: float = 0.7
    self_replace_steps: float = 0.7
    thresh_e: float = 0.5
    thresh_m: float = 0.8
    temperature: float = 0.15
    enabled: bool = True
    step: int = 0
    # per branch: accumulated (sum over layers and steps) base-derived / mutual-derived maps, per resolution
    maps_s: list[dict] = field(default_factory=list)
    maps_m: list[dict] = field(default_factory=list)
    # raw conditional cross-attention maps of every row, accumulated (for aspect grouping)
    raw_maps: dict = field(default_factory=dict)

    def __post_init__(self):
        self.maps_s = [{} for _ in self.branches]
        self.maps_m = [{} for _ in self.branches]

    @property
    def rows(self) -> int:
        return 1 + 2 * len(self.branches)

    def progress(self) -> float:
        """(step + 1) / num_steps: the official ``(cur_step + start_steps + 1) / num_steps``."""
        return (self.step + 1) / self.num_steps

    @staticmethod
    def base_row(j: int) -> int:
        return 0 if j == 0 else 2 * j - 1

    # ------------------------------------------------------------------ self-attention: q / k / v exchange
    def exchange_qkv(self, q, k, v, heads: int):
        """q, k, v: (2 R heads, L, d) -> the exchanged q, k, v (official ``self_attn_forward``)."""
        if not self.enabled or not any(b.self_control for b in self.branches):
            return q, k, v
        R = self.rows
        q0, k0, v0 = (x.view(2, R, heads, *x.shape[1:]) for x in (q, k, v))
        q1, k1, v1 = q0.clone(), k0.clone(), v0.clone()
        late = self.self_replace_steps <= self.progress()
        for j, b in enumerate(self.branches):
            if not b.self_control:
                continue
            s, t, m = self.base_row(j), 2 * j + 1, 2 * j + 2
            if late:  # mutual self-attention: M_j queries with B_j's queries into the base's keys / values
                q1[:, m], k1[:, m], v1[:, m] = q0[:, t], k0[:, s], v0[:, s]
            else:  # B_j takes the base's maps (queries, keys), M_j reproduces the base
                q1[:, t], k1[:, t] = q0[:, s], k0[:, s]
                q1[:, m], k1[:, m], v1[:, m] = q0[:, s], k0[:, s], v0[:, s]
        return q1.view_as(q), k1.view_as(k), v1.view_as(v)

    # ------------------------------------------------------------------ cross-attention: map replacement
    def _map(self, b: BranchControl, base: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if b.mode == "replace":
            return torch.einsum("hqk,kl->hql", base, b.mapper.to(base))
        alpha = b.alpha.to(base)
        return base[..., b.mapper.to(base.device)] * alpha + target * (1 - alpha)

    def edit_cross(self, probs: torch.Tensor, heads: int) -> torch.Tensor:
        """probs (2 R heads, Lq, Lk) -> edited probs (conditional half only); stores maps for the blend."""
        R = self.rows
        p = probs.view(2, R, heads, *probs.shape[1:])
        res = int(round(p.shape[-2] ** 0.5))
        cond = p[1]
        for r in range(R):  # raw maps of every row, for the grouping pass
            acc = self.raw_maps.setdefault(res, torch.zeros(R, *cond.shape[-2:], dtype=cond.dtype, device=cond.device))
            acc[r] += cond[r].mean(0)
        if not self.enabled:
            return probs
        new = p.clone()
        active = self.cross_replace_steps >= self.progress()
        for j, b in enumerate(self.branches):
            s, t, m = self.base_row(j), 2 * j + 1, 2 * j + 2
            store_s = self._map(b, cond[s], cond[t])
            store_m = self._map(b, cond[m], cond[t])
            if active:
                new[1, t] = store_s
            for acc, val in ((self.maps_s[j], store_s), (self.maps_m[j], store_m)):
                acc[res] = acc.get(res, 0) + val.mean(0)
        return new.view_as(probs)

    def __call__(self, probs: torch.Tensor, is_cross: bool, place: str, heads: int) -> torch.Tensor:
        """The probability hook of conddiff's ``ControlledAttnProcessor``: cross-attention is edited."""
        return self.edit_cross(probs, heads) if is_cross else probs

    # ------------------------------------------------------------------ local blend
    def _blend_maps(self, acc: dict) -> torch.Tensor | None:
        """(r, r, L) at the finest resolution that has cross-attention."""
        if not acc:
            return None
        res = max(int(round(k)) for k in acc)
        m = acc[res]
        return m.reshape(res, res, m.shape[-1])

    @staticmethod
    def blend_mask(maps: torch.Tensor, tokens: torch.Tensor, n_tokens: int, size, threshold: float) -> torch.Tensor:
        """Official ``LocalBlend.get_mask``: the chosen words' maps (tokens 1 .. len - 2), max over words, nearest
        resize, divided by the maximum, > threshold. An empty word set gives an empty mask."""
        sel = (maps * tokens.to(maps)[None, None])[..., 1:n_tokens - 1]
        if sel.shape[-1] == 0:
            return torch.zeros(1, 1, *size, dtype=torch.bool, device=maps.device)
        m = sel.amax(-1)[None, None]
        m = F.interpolate(m, size=tuple(size))
        peak = m.amax()
        if peak <= 0:
            return torch.zeros_like(m, dtype=torch.bool)
        return (m / peak) > threshold

    def local_blend(self, j: int, x_s: torch.Tensor, x_t: torch.Tensor, x_m: torch.Tensor, abar_t: float,
                    last: bool) -> torch.Tensor:
        """Branch j's blended state (official ``LocalBlend.__call__``); x_* are (1, C, H, W)."""
        b = self.branches[j]
        maps_s, maps_m = self._blend_maps(self.maps_s[j]), self._blend_maps(self.maps_m[j])
        if maps_s is None:
            return x_t
        size = x_t.shape[-2:]
        thresh_e = max(self.temperature / abar_t**0.5, self.thresh_e)
        both = b.local_tokens * b.mutual_tokens
        mask_e = self.blend_mask(maps_m, b.local_tokens, b.n_tokens, size, thresh_e)
        mask_m = self.blend_mask(maps_s, b.mutual_tokens - both, b.n_tokens, size, self.thresh_m)
        out = x_t if b.local_tokens.sum() == 0 else torch.where(mask_e, x_t, x_m)
        out = torch.where(mask_m, x_s, out)
        if last:
            out = torch.where(self.blend_mask(maps_m, both, b.n_tokens, size, self.thresh_e), x_m, out)
        return out


class MultiBranchAttnProcessor(ControlledAttnProcessor):
    """conddiff's controlled diffusers ``AttnProcessor`` with the controller's q / k / v exchange in self-attention
    and its cross-attention edit on the probabilities."""

    def __init__(self, controller: MultiBranchController, place: str = "mid"):
        super().__init__(controller, place)

    def edit_qkv(self, query, key, value, is_cross: bool, heads: int):
        return (query, key, value) if is_cross else self.controller.exchange_qkv(query, key, value, heads)


def install(unet, controller: MultiBranchController) -> dict:
    """Route every attention layer of ``unet`` through ``controller``; returns the previous processors."""
    previous = dict(unet.attn_processors)
    unet.set_attn_processor({name: MultiBranchAttnProcessor(controller, place_of(name)) for name in previous})
    return previous
