"""Aspect grouping (ParallelEdits Sec. 4.2.1): which edited aspects share a branch, and the branch prompts.

The rules of the official code (``get_edits_type``, ``calculate_miou``, ``aspect_clustering`` and
``generate_editing_prompt`` in ``Edit_demo.ipynb``), on cross-attention maps from a short first pass, each word's
map scaled to 0..255 by its maximum (the official ``show_cross_attention`` images):

1. an aspect whose target word's map exceeds 100 on >= 80 % of the image is a **global** edit (style, background);
2. an addition / deletion (no source words to compare) is **non-rigid**;
3. a swap whose "mIoU" between the source words' map (source prompt) and the target words' map (target prompt),
   averaged over the binarisation thresholds 90..109, is < 0.9 is **non-rigid** (the layout changes), else
   **rigid**. As the official ``calculate_iou``, the "IoU" divides the intersection by min(|A|, |B|) (the
   overlap coefficient), not by the union;
4. within the rigid and within the non-rigid aspects, aspects whose target maps overlap at all (a non-zero mean
   overlap, the truthiness test of ``aspect_clustering``) share a group; every group is one branch;
5. branch prompts are cumulative: branch k's prompt is the source prompt with the edits of groups 1..k applied,
   in the order rigid groups, non-rigid groups, then one global branch; the last prompt is the full target.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

COVERAGE_LEVEL = 100.0  # official `threshold = 100` on the 0..255 maps
COVERAGE_FRACTION = 0.8
RIGID_MIOU = 0.9


@dataclass(frozen=True)
class Aspect:
    """One edited aspect in PIE-Bench++'s ``edit_action`` form: ``text`` (the target words) with ``action``
    "+" (added), "-" (deleted; ``text`` are then the removed source words) or the source words it replaces;
    ``position`` is the word index in the source prompt (where an addition is inserted)."""

    text: str
    action: str
    position: int
    edit_type: str = ""
    noun: str = ""  # the object noun the aspect edits in the target (PIE-Bench(++) ``blended_words``), if known
    source_noun: str = ""  # ... and in the source

    @property
    def key_words(self) -> list[str]:
        """The words that stand for the aspect in the target prompt: its object noun when known (the official
        ``obj-adj-pair`` key: the global test, the mIoU, the clustering and the local blend all use it), else
        its target words. Empty for a deletion."""
        if self.action == "-":
            return []
        return [self.noun] if self.noun else self.target_words

    @property
    def is_swap(self) -> bool:
        return self.action not in ("+", "-")

    @property
    def source_words(self) -> list[str]:
        return self.action.split() if self.is_swap else (self.text.split() if self.action == "-" else [])

    @property
    def target_words(self) -> list[str]:
        return [] if self.action == "-" else self.text.split()


def aspects_from_edit_action(edit_action: dict, blended_words: list[str] | None = None) -> list[Aspect]:
    """PIE-Bench++ ``edit_action`` {text: {"position", "edit_type", "action"}} -> aspects, in annotation order;
    ``blended_words`` ("source_noun target_noun" per aspect, PIE-Bench++'s field) gives each aspect its nouns."""
    nouns = [str(b).split() for b in blended_words] if blended_words and len(blended_words) == len(
        edit_action) else [[] for _ in edit_action]
    return [Aspect(str(text), str(v["action"]), int(v["position"]), str(v.get("edit_type", "")),
                   n[-1] if n else "", n[0] if n else "")
            for (text, v), n in zip(edit_action.items(), nouns)]


def aspects_from_prompts(source_prompt: str, target_prompt: str) -> list[Aspect]:
    """Aspects from the word difference of two prompts (for PIE-Bench, which has no ``edit_action``): each
    replaced, inserted or deleted run of words is one aspect (difflib's matching blocks)."""
    a = source_prompt.replace("[", "").replace("]", "").split()
    b = target_prompt.replace("[", "").replace("]", "").split()
    out = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op == "replace":
            out.append(Aspect(" ".join(b[j1:j2]), " ".join(a[i1:i2]), i1))
        elif op == "insert":
            out.append(Aspect(" ".join(b[j1:j2]), "+", i1))
        elif op == "delete":
            out.append(Aspect(" ".join(a[i1:i2]), "-", i1))
    return out


def _replace_words(words: list[str], old: list[str], new: list[str]) -> list[str] | None:
    for i in range(len(words) - len(old) + 1):
        if words[i:i + len(old)] == old:
            return words[:i] + new + words[i + len(old):]
    return None


def apply_edits(source_prompt: str, aspects: list[Aspect]) -> str:
    """The source prompt with ``aspects`` applied (official ``generate_editing_prompt``).

    In annotation order: an addition inserts its words at ``position`` and shifts the positions of the edits
    still to apply at or after it; a deletion removes the first occurrence of its words; a swap replaces the
    first occurrence of its source words. Matching is by whole words (the official code matches substrings).
    """
    words = source_prompt.replace("[", "").replace("]", "").split()
    pending = [[a, a.position] for a in aspects]
    for k, (a, pos) in enumerate(pending):
        if a.action == "+":
            words = words[:pos] + a.text.split() + words[pos:]
            shift = len(a.text.split())
        else:
            old, new = (a.text.split(), []) if a.action == "-" else (a.action.split(), a.text.split())
            out = _replace_words(words, old, new)
            if out is None:
                raise ValueError(f"aspect {a} not applicable: {' '.join(old)!r} is not in {' '.join(words)!r}")
            words, shift = out, len(new) - len(old)
        for later in pending[k + 1:]:
            if later[1] >= pos:
                later[1] += shift
    return " ".join(words)


# ------------------------------------------------------------------------------------------------- maps
def word_token_indices(tokenizer, prompt: str) -> list[tuple[str, list[int]]]:
    """(word, token positions) for each word of ``prompt``; position 0 is <bos>, so the first word starts at 1.

    Each word is tokenised on its own (a word-level tokenizer gives one token a word, CLIP's BPE one or more),
    as the official ``get_word_inds`` walks the decoded tokens.
    """
    out, cursor = [], 1
    for w in prompt.split():
        n = len(tokenizer(w, add_special_tokens=False).input_ids)
        out.append((w, list(range(cursor, cursor + n))))
        cursor += n
    return out


def word_maps(token_maps: torch.Tensor, tokenizer, prompt: str, size: int | None = None) -> dict[str, np.ndarray]:
    """Per-word attention maps on the official 0..255 scale (255 · map / max(map)).

    ``token_maps`` (tokens, r, r) are averaged cross-attention maps of one prompt; a word of several tokens
    averages them; ``size`` bilinearly resizes (the official code resizes the 16x16 maps to 256x256). A repeated
    word keeps its first occurrence (the official dict keeps one entry per word).
    """
    out: dict[str, np.ndarray] = {}
    for w, idx in word_token_indices(tokenizer, prompt):
        if w in out or max(idx) >= token_maps.shape[0]:
            continue
        m = token_maps[idx].float().mean(0, keepdim=True)[None]
        if size is not None and m.shape[-1] != size:
            m = F.interpolate(m, size=(size, size), mode="bilinear", align_corners=False)
        m = m[0, 0].clamp_min(0)
        out[w] = (255.0 * m / m.max().clamp_min(1e-12)).cpu().numpy()
    return out


def overlap_coefficient(a: np.ndarray, b: np.ndarray, threshold: float) -> float:
    """|A ∩ B| / min(|A|, |B|) of the binarised maps A = a > threshold, B = b > threshold (official
    ``calculate_iou``); 0 when either set is empty."""
    A, B = a > threshold, b > threshold
    denom = min(A.sum(), B.sum())
    return float(np.logical_and(A, B).sum() / denom) if denom > 0 else 0.0


def mean_overlap(maps_a: dict[str, np.ndarray], maps_b: dict[str, np.ndarray], words_a: list[str],
                 words_b: list[str], level: float = COVERAGE_LEVEL) -> float:
    """Official ``calculate_miou``: average the words' maps of each side, then the overlap coefficient averaged
    over the thresholds level - 10 .. level + 9. A word missing from its prompt's maps gives 0."""
    if not words_a or not words_b or any(w not in maps_a for w in words_a) or any(w not in maps_b for w in words_b):
        return 0.0
    a = sum(maps_a[w] for w in words_a) / len(words_a)
    b = sum(maps_b[w] for w in words_b) / len(words_b)
    return float(np.mean([overlap_coefficient(a, b, t) for t in range(int(level) - 10, int(level) + 10)]))


def covers_image(m: np.ndarray, level: float = COVERAGE_LEVEL, fraction: float = COVERAGE_FRACTION) -> bool:
    """Official global-edit test: the map exceeds ``level`` on at least ``fraction`` of the pixels."""
    return bool((m > level).sum() >= fraction * m.size)


# --------------------------------------------------------------------------------------------- grouping
def classify_aspects(aspects: list[Aspect], src_maps: dict[str, np.ndarray],
                     tgt_maps: dict[str, np.ndarray]) -> dict[str, list[Aspect]]:
    """Official ``get_edits_type``: {"global": [...], "rigid": [...], "non_rigid": [...]} (rules 1-3)."""
    out: dict[str, list[Aspect]] = {"global": [], "rigid": [], "non_rigid": []}
    for a in aspects:
        last = a.key_words[-1] if a.key_words else None
        if last is not None and last in tgt_maps and covers_image(tgt_maps[last]):
            out["global"].append(a)
        elif not a.is_swap:
            out["non_rigid"].append(a)
        elif mean_overlap(src_maps, tgt_maps, a.source_words, a.key_words) < RIGID_MIOU:
            out["non_rigid"].append(a)
        else:
            out["rigid"].append(a)
    return out


def cluster_aspects(aspects: list[Aspect], tgt_maps: dict[str, np.ndarray]) -> list[list[Aspect]]:
    """Official ``aspect_clustering`` (rule 4): greedily, the first remaining aspect takes every other one whose
    target maps overlap its own at all. Deviation: an aspect with no target words in the maps (a deletion)
    forms its own group instead of being dropped, so that the last branch prompt is the full target prompt."""
    rest, groups = list(aspects), []
    while rest:
        base = rest.pop(0)
        group = [base]
        if base.key_words and all(w in tgt_maps for w in base.key_words):
            for other in list(reversed(rest)):
                if mean_overlap(tgt_maps, tgt_maps, base.key_words, other.key_words) > 0:
                    group.append(other)
                    rest.remove(other)
        groups.append(sorted(group, key=aspects.index))
    return groups


@dataclass
class Branch:
    """One editing branch: its aspects, their type, its prompt and the previous branch's prompt (its base)."""

    aspects: list[Aspect]
    kind: str  # "rigid" | "non_rigid" | "global"
    prompt: str
    base_prompt: str
    local_words: list[str] = field(default_factory=list)  # the target words the local blend edits

    @property
    def shape_change(self) -> bool:
        """Official ``shape_change``: non-rigid and global branches use P2P refinement (and, under the official
        ``self_attn_list`` rule, self-attention control; see ``multiedits.attention.self_attn_list``)."""
        return self.kind != "rigid"


def branch_prompts(source_prompt: str, groups: list[tuple[str, list[Aspect]]], order: list[Aspect]) -> list[Branch]:
    """Rule 5: cumulative prompts; ``order`` is the annotation order in which the edits are applied."""
    branches, done, base = [], [], source_prompt.replace("[", "").replace("]", "")
    for kind, group in groups:
        done = done + group
        prompt = apply_edits(source_prompt, [a for a in order if a in done])
        # official demo: blended_word_list gets the group's object nouns, "" for the global branch (no blend)
        local = [] if kind == "global" else [w for a in group for w in a.key_words]
        branches.append(Branch(list(group), kind, prompt, base, local))
        base = prompt
    return branches


def group_aspects(source_prompt: str, aspects: list[Aspect], src_maps: dict[str, np.ndarray],
                  tgt_maps: dict[str, np.ndarray]) -> list[Branch]:
    """Rules 1-5: the branches of a multi-aspect edit, rigid groups first, then non-rigid, then one global."""
    types = classify_aspects(aspects, src_maps, tgt_maps)
    groups = [("rigid", g) for g in cluster_aspects(types["rigid"], tgt_maps)]
    groups += [("non_rigid", g) for g in cluster_aspects(types["non_rigid"], tgt_maps)]
    if types["global"]:
        groups.append(("global", types["global"]))
    return branch_prompts(source_prompt, groups, aspects)

