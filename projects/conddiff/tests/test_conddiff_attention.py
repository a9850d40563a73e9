"""Prompt-to-Prompt through diffusers attention processors: identity without an edit, each edit rule by hand."""

import torch

from conddiff import attention as attn_lib
from conddiff.blending import ClassifierFreeGuidance
from conddiff.sampler import sample
from conddiff.testing import PROMPT, tiny_pipe


def test_processors_leave_outputs_unchanged_without_an_edit():
    pipe = tiny_pipe()
    x, emb = torch.randn(2, 3, 16, 16), pipe.encode_prompts([PROMPT, ""])
    with torch.no_grad():
        ref = pipe.eps(x, 500, emb)
        previous = attn_lib.install(pipe.unet, attn_lib.AttentionStore())
        n_layers = len(previous)
        got = pipe.eps(x, 500, emb)
        pipe.unet.set_attn_processor(previous)
    assert torch.allclose(ref, got, atol=1e-6)
    assert n_layers >= 4  # self- and cross-attention layers at two levels


def test_p2p_word_swap_edits_only_the_target_branch_and_only_early_steps():
    store = attn_lib.PromptToPrompt("replace", mapper=torch.eye(4), cross_replace_steps=0.5, self_replace_steps=0.0)
    store.num_steps, store.step = 10, 2
    probs = torch.rand(2 * 3, 5, 4).softmax(-1)  # batch [src, tgt] x 3 heads, 5 queries, 4 tokens
    out = store(probs.clone(), True, "down", heads=3).view(2, 3, 5, 4)
    p = probs.view(2, 3, 5, 4)
    assert torch.equal(out[0], p[0]) and torch.allclose(out[1], p[0])  # target takes the source's maps
    store.step = 6  # past cross_replace_steps * num_steps
    assert torch.equal(store(probs.clone(), True, "down", heads=3), probs)
    # with CFG only the conditional half is edited
    store.step, store.cfg_doubled = 0, True
    probs4 = torch.rand(4 * 3, 5, 4).softmax(-1)
    out4 = store(probs4.clone(), True, "down", heads=3).view(4, 3, 5, 4)
    p4 = probs4.view(4, 3, 5, 4)
    assert torch.equal(out4[:2], p4[:2]) and torch.allclose(out4[3], p4[2])


def test_refine_alignment_and_reweight():
    mapper, alpha = attn_lib.refine_alignment("a red circle".split(), "a big red circle".split(), 7)
    # target tokens: <bos> a big red circle <eos> pad -> source tokens 0 1 (new) 2 3 4 5
    assert mapper.tolist()[:2] == [0, 1] and mapper.tolist()[3:6] == [2, 3, 4]
    assert alpha.tolist() == [1, 1, 0, 1, 1, 1, 1]
    ctl = attn_lib.PromptToPrompt("refine", mapper=mapper, alpha=alpha)
    base, target = torch.rand(1, 2, 3, 7), torch.rand(1, 2, 3, 7)
    out = ctl.edit_cross(base, target)
    assert torch.allclose(out[..., 2], target[..., 2]) and torch.allclose(out[..., 3], base[..., 2])
    eq = torch.ones(7)
    eq[3] = 2.0
    rw = attn_lib.PromptToPrompt("reweight", equalizer=eq).edit_cross(base, target)
    assert torch.allclose(rw[..., 3], 2 * base[..., 3]) and torch.allclose(rw[..., 0], base[..., 0])


def test_local_blend_formula():
    ctl = attn_lib.PromptToPrompt("replace", mapper=torch.eye(3), blend_tokens=([1], [1]), blend_pool=0)
    maps = torch.zeros(2, 1, 4, 3)  # one layer: (B=2, heads=1, 2x2 queries, 3 tokens)
    maps[0, 0, 0, 1] = 1.0  # source word attends to the top-left quarter
    maps[1, 0, 3, 1] = 1.0  # target word to the bottom-right quarter
    ctl.step_maps = [maps]
    x = torch.stack([torch.zeros(1, 4, 4), torch.ones(1, 4, 4)])
    out = ctl.local_blend(x)
    expected = torch.zeros(4, 4)
    expected[:2, :2] = expected[2:, 2:] = 1  # union of the source and the target word's masks
    assert torch.equal(out[0], x[0])  # the source branch is kept
    assert torch.equal(out[1, 0], expected)  # x_src + m (x_tgt - x_src)


def test_p2p_sampling_keeps_the_source_branch_identical_to_plain_sampling():
    pipe = tiny_pipe()
    x_T = torch.randn(1, 3, 16, 16).repeat(2, 1, 1, 1)
    prompts = [PROMPT, PROMPT.replace("red", "blue")]
    ctl = attn_lib.PromptToPrompt("replace", mapper=torch.eye(32))
    edited = sample(pipe, prompts, steps=3, x_T=x_T, attention=ctl, blending=ClassifierFreeGuidance(2.0))
    plain = sample(pipe, prompts, steps=3, x_T=x_T, blending=ClassifierFreeGuidance(2.0))
    assert torch.allclose(edited[0], plain[0], atol=1e-5)  # the source branch is untouched
    assert not torch.allclose(edited[1], plain[1], atol=1e-5)  # the target branch is edited
    assert len(pipe.unet.attn_processors) and all(
        not isinstance(p, attn_lib.ControlledAttnProcessor) for p in pipe.unet.attn_processors.values())
