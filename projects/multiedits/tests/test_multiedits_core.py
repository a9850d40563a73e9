"""Equations and blocks against hand-computed values: RLE, aspect grouping, DDCM, attention exchange, blend,
background metrics, the offline records and the real-data loaders."""

import json

import numpy as np
import pytest
import torch
from diffusers.models.attention_processor import AttnProcessor

from conddiff.testing import tiny_pipe
from multiedits import attention as ma
from multiedits.data import attribute_edit_records, load_images, load_pie_bench, load_pie_bench_pp, render_record
from multiedits.ddcm import anchors, ddcm_step
from multiedits.editor import (
    EditConfig,
    multi_branch_edit,
    parallel_edit,
    sequential_edit,
    sequential_steps,
    single_branch_edit,
)
from multiedits.grouping import (
    Aspect,
    Branch,
    apply_edits,
    aspects_from_edit_action,
    aspects_from_prompts,
    classify_aspects,
    cluster_aspects,
    covers_image,
    group_aspects,
    mean_overlap,
    overlap_coefficient,
)
from multiedits.metrics import unedited_metrics
from shared.data import shapes_world as sw


# ------------------------------------------------------------------------------------------- PIE-Bench data
def test_rle_decoding_of_a_hand_made_mask_list_and_string_with_border():
    # 6x6 image; runs (start, length): pixels 8-9 and 14-16 (row 1 cols 2-3, row 2 cols 2-4)
    expected = np.zeros((6, 6), bool)
    expected[1, 2:4] = True
    expected[2, 2:5] = True
    listed = sw.rle_decode([8, 2, 14, 3], (6, 6), border=False)
    assert np.array_equal(listed, expected)
    assert np.array_equal(sw.rle_decode("8 2 14 3", (6, 6), border=False), expected)  # PIE-Bench++ string
    with_border = sw.rle_decode([8, 2, 14, 3], (6, 6))
    border = np.zeros((6, 6), bool)
    border[0, :] = border[-1, :] = border[:, 0] = border[:, -1] = True
    assert np.array_equal(with_border, expected | border)


def _write_pie_bench(root, image_size=16):
    from PIL import Image

    (root / "annotation_images" / "1_change_object_80").mkdir(parents=True)
    img = np.zeros((image_size, image_size, 3), np.uint8)
    img[4:8, 4:8] = 200
    Image.fromarray(img).save(root / "annotation_images" / "1_change_object_80" / "100000000000.png")
    mask = np.zeros((image_size, image_size), bool)
    mask[4:8, 4:8] = True
    mapping = {"100000000000": {"image_path": "1_change_object_80/100000000000.png",
                                "original_prompt": "a red circle", "editing_prompt": "a red [square]",
                                "editing_instruction": "make it a square", "editing_type_id": "1",
                                "blended_word": "circle square", "mask": sw.rle_encode(mask)}}
    (root / "mapping_file.json").write_text(json.dumps(mapping))
    return mask


def test_pie_bench_loader_reads_prompts_blend_words_and_mask_exactly(tmp_path):
    mask = _write_pie_bench(tmp_path)
    (rec,) = load_pie_bench(tmp_path)
    assert rec["source_prompt"] == "a red circle" and rec["target_prompt"] == "a red square"
    assert rec["blended_words"] == ["circle", "square"] and rec["editing_type_id"] == "1"
    img, m = load_images(rec, 16)
    border = np.zeros_like(mask)
    border[0, :] = border[-1, :] = border[:, 0] = border[:, -1] = True
    assert img.shape == (16, 16, 3) and np.array_equal(m, mask | border)
    assert aspects_from_prompts(rec["source_prompt"], rec["target_prompt"]) == [Aspect("square", "circle", 2)]


def test_pie_bench_pp_parquet_string_fields_are_parsed(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "1_change_object_80").mkdir()
    row = {"id": "x", "source_prompt": "a man sitting in a boat", "target_prompt": "a man [standing] in a boat",
           "edit_action": json.dumps({"man standing": {"position": 2, "edit_type": 5, "action": "man sitting"}}),
           "aspect_mapping": "{'man standing': ['man']}", "blended_words": "['man man']", "mask": "0 3"}
    pq.write_table(pa.Table.from_pylist([row]), tmp_path / "1_change_object_80" / "V1-00000.parquet")
    (rec,) = load_pie_bench_pp(tmp_path)
    assert rec["edit_action"]["man standing"]["action"] == "man sitting"
    assert rec["aspect_mapping"] == {"man standing": ["man"]} and rec["target_prompt"] == "a man standing in a boat"
    (a,) = aspects_from_edit_action(rec["edit_action"])
    assert apply_edits(rec["source_prompt"], [a]) == rec["target_prompt"]


def test_missing_or_malformed_roots_raise_naming_the_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match="mapping_file.json"):
        load_pie_bench(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="parquet"):
        load_pie_bench_pp(tmp_path)


def test_offline_records_are_pie_bench_pp_shaped_and_consistent():
    recs = attribute_edit_records(12, 3, (1, 4))
    for r in recs:
        aspects = aspects_from_edit_action(r["edit_action"])
        assert len(aspects) == len(r["aspects"]) == len(r["blended_words"]) >= 1
        assert apply_edits(r["source_prompt"], aspects) == r["target_prompt"]
        assert sw.strip_brackets(r["editing_prompt"]) == r["target_prompt"]
        src, tgt, mask = render_record(r)
        changed = (src != tgt).any(-1)
        assert not (changed & ~mask).any()  # every changed pixel lies inside the union of the aspect masks
    with pytest.raises(ValueError, match="n_aspects"):
        attribute_edit_records(1, 0, 5)


# --------------------------------------------------------------------------------------------- grouping
def test_apply_edits_swap_insert_delete_and_position_shift():
    src = "a man sitting in a boat with mountain"
    aspects = [Aspect("man standing", "man sitting", 1), Aspect("ducks", "+", 6),
               Aspect("Alps mountain", "mountain", 7)]
    assert apply_edits(src, aspects) == "a man standing in a boat ducks with Alps mountain"
    assert apply_edits(src, [Aspect("in a boat", "-", 3)]) == "a man sitting with mountain"
    with pytest.raises(ValueError, match="not applicable"):
        apply_edits(src, [Aspect("x", "cat", 0)])
    steps = sequential_steps(src, [Aspect("ducks", "+", 2), Aspect("lake", "+", 5)])
    assert steps[1][1].position == 6 and steps[-1][2] == "a man ducks sitting in a lake boat with mountain"


def test_overlap_coefficient_divides_by_the_smaller_set_not_the_union():
    a = np.zeros((4, 4))
    b = np.zeros((4, 4))
    a[0, :] = 200  # |A| = 4
    b[:2, :] = 200  # |B| = 8, A ⊂ B
    assert overlap_coefficient(a, b, 100) == 1.0  # IoU would be 0.5
    b[0, :2] = 0  # intersection 2, |B| = 6 -> 2 / min(4, 6)
    assert overlap_coefficient(a, b, 100) == pytest.approx(0.5)


def test_mean_overlap_averages_thresholds_90_to_109():
    a = np.zeros((4, 4))
    b = np.zeros((4, 4))
    a[:2] = 255
    b[:2] = 255
    b[0] = 95  # for thresholds 90..94 B = rows 0-1 (overlap 1); for 95..109 B = row 1 (overlap 4/4 = 1)
    assert mean_overlap({"x": a}, {"y": b}, ["x"], ["y"]) == pytest.approx(1.0)
    a2 = np.zeros((4, 4))
    a2[0] = 255  # A = row 0: overlap 1 for thresholds 90..94 (5 of 20), then 0 -> mean 0.25
    assert mean_overlap({"x": a2}, {"y": b}, ["x"], ["y"]) == pytest.approx(0.25)
    assert mean_overlap({"x": a2}, {"y": b}, ["x"], ["missing"]) == 0.0


def test_aspect_types_global_non_rigid_rigid_on_hand_made_maps():
    full = np.full((10, 10), 200.0)
    blob = np.zeros((10, 10))
    blob[2:6, 2:6] = 255
    moved = np.zeros((10, 10))
    moved[6:9, 6:9] = 255
    assert covers_image(full) and not covers_image(blob)
    src = {"gray": full, "red": blob, "circle": blob}
    tgt = {"striped": full, "blue": blob, "square": moved, "cat": blob}
    kinds = classify_aspects([Aspect("striped", "gray", 9), Aspect("blue", "red", 2), Aspect("square", "circle", 3),
                              Aspect("cat", "+", 4)], src, tgt)
    assert [a.text for a in kinds["global"]] == ["striped"]
    assert [a.text for a in kinds["rigid"]] == ["blue"]
    assert [a.text for a in kinds["non_rigid"]] == ["square", "cat"]


def test_overlapping_aspects_share_a_branch_and_prompts_are_cumulative():
    blob = np.zeros((8, 8))
    blob[1:4, 1:4] = 255
    other = np.zeros((8, 8))
    other[5:8, 5:8] = 255
    full = np.full((8, 8), 255.0)
    src_prompt = "a small red circle on the left on a gray background"
    src = {"small": blob, "red": blob, "circle": blob, "gray": full}
    tgt = {"big": blob, "blue": blob, "circle": blob, "striped": full}
    aspects = [Aspect("big", "small", 1), Aspect("blue", "red", 2), Aspect("striped", "gray", 9)]
    groups = cluster_aspects(aspects[:2], tgt)
    assert [[a.text for a in g] for g in groups] == [["big", "blue"]]
    assert len(cluster_aspects(aspects[:2], {"big": blob, "blue": other})) == 2
    branches = group_aspects(src_prompt, aspects, src, tgt)
    assert [b.kind for b in branches] == ["rigid", "global"]
    assert branches[0].prompt == "a big blue circle on the left on a gray background"
    assert branches[1].base_prompt == branches[0].prompt
    assert branches[-1].prompt == apply_edits(src_prompt, aspects) == (
        "a big blue circle on the left on a striped background")
    assert branches[0].local_words == ["big", "blue"] and not branches[0].shape_change and branches[1].shape_change
    assert branches[1].local_words == []  # the official demo blends no word in the global branch


# ------------------------------------------------------------------------------------------------- DDCM
def test_ddcm_reduces_to_the_source_update_when_target_equals_source():
    g = torch.Generator().manual_seed(0)
    z0, x, eps, n = (torch.randn(2, 3, 4, 4, generator=g) for _ in range(4))
    out = ddcm_step(x, x, eps, eps, z0, 0.3, 0.6, n, eta=1.0)
    assert torch.allclose(out.x0_tgt, z0) and torch.allclose(out.x_tgt_prev, out.x_src_prev)
    # η = 1: x_{t-1} = √ᾱ' z0 + √(1 - ᾱ') n (a fresh forward sample; no deterministic term)
    assert torch.allclose(out.x_src_prev, 0.6**0.5 * z0 + 0.4**0.5 * n, atol=1e-6)


def test_ddcm_hand_computed_values_and_consistent_noise():
    z0, x_s, x_t = torch.tensor([0.5]), torch.tensor([0.2]), torch.tensor([0.4])
    e_s, e_t, n = torch.tensor([0.1]), torch.tensor([-0.3]), torch.tensor([1.0])
    a, ap = 0.25, 0.64
    out = ddcm_step(x_s, x_t, e_s, e_t, z0, a, ap, n, eta=0.0)
    eps_c = (0.2 - 0.5 * 0.5) / 0.75**0.5
    x0 = 0.5 + ((0.4 - 0.2) - 0.75**0.5 * (-0.4)) / 0.5
    eps = -0.4 + eps_c
    assert out.x0_tgt.item() == pytest.approx(x0)
    assert out.x_tgt_prev.item() == pytest.approx(0.8 * x0 + 0.6 * eps)  # σ = 0 at η = 0: n unused
    assert out.x_src_prev.item() == pytest.approx(0.8 * 0.5 + 0.6 * eps)
    # ε_c recovers the noise that made x_s from z0
    noise = torch.tensor([0.7])
    xs = a**0.5 * z0 + (1 - a) ** 0.5 * noise
    same = ddcm_step(xs, xs, e_s, e_s, z0, a, ap, n, eta=0.0)
    assert same.x_src_prev.item() == pytest.approx(ap**0.5 * 0.5 + (1 - ap) ** 0.5 * 0.7)


def test_anchors_are_the_source_during_warmup_then_shift_by_one_branch():
    states, x0 = torch.arange(3.0).view(3, 1, 1, 1), 10 + torch.arange(3.0).view(3, 1, 1, 1)
    src, clean = torch.full((1, 1, 1, 1), -1.0), torch.full((1, 1, 1, 1), -2.0)
    xs, z = anchors(6, states, x0, src, clean)
    assert xs.flatten().tolist() == [-1, -1, -1] and z.flatten().tolist() == [-2, -2, -2]
    xs, z = anchors(7, states, x0, src, clean)
    assert xs.flatten().tolist() == [1, 2, -1] and z.flatten().tolist() == [11, 12, -2]
    xs, z = anchors(9, states[:1], x0[:1], src, clean)  # one branch: always the source (InfEdit)
    assert xs.flatten().tolist() == [-1] and z.flatten().tolist() == [-2]


def test_multi_branch_edit_with_target_prompt_equal_to_source_reconstructs_the_source():
    pipe = tiny_pipe(0)
    prompt = "a big red circle on the left on a gray background"
    image = torch.rand(1, 3, 16, 16) * 2 - 1
    cfg = EditConfig(steps=4, guidance_t=3.0, guidance_s=3.0, warmup_steps=1)
    branches = [Branch([], "rigid", prompt, prompt, ["red"]), Branch([], "rigid", prompt, prompt, ["big"])]
    x0, _ = multi_branch_edit(pipe, image, prompt, branches, cfg, torch.Generator().manual_seed(0))
    assert torch.allclose(x0, image.expand_as(x0), atol=1e-4)


# --------------------------------------------------------------------------------------------- attention
def _unet_out(pipe, x, emb, processor):
    pipe.unet.set_attn_processor(processor)
    return pipe.eps(x, 500, emb)


def test_attention_exchange_is_a_no_op_for_one_branch_with_no_edit():
    pipe = tiny_pipe(1)
    prompt = "a small blue square at the top on a black background"
    L = pipe.tokenizer.model_max_length
    control = ma.branch_control(pipe.tokenizer, prompt, prompt, False, [], [], L, self_control=True)
    assert control.mode == "replace" and torch.equal(control.mapper, torch.eye(L)) and control.self_control
    x = torch.randn(1, 3, 16, 16).repeat(6, 1, 1, 1)  # [S, B, M] x [uncond, cond], identical states
    emb = pipe.encode_prompts([""] * 3 + [prompt] * 3)
    for step in (0, 3):  # early (map replacement) and late (mutual self-attention) phases
        ctrl = ma.MultiBranchController([control], num_steps=4, step=step)
        ours = _unet_out(pipe, x, emb, ma.MultiBranchAttnProcessor(ctrl))
        ref = _unet_out(pipe, x, emb, AttnProcessor())
        assert torch.allclose(ours, ref, atol=1e-5)
    # disabled controller == diffusers' processor on arbitrary, different rows
    x = torch.randn(6, 3, 16, 16)
    ctrl = ma.MultiBranchController([control], num_steps=4, enabled=False)
    assert torch.allclose(_unet_out(pipe, x, emb, ma.MultiBranchAttnProcessor(ctrl)),
                          _unet_out(pipe, x, emb, AttnProcessor()), atol=1e-5)


def test_self_attn_list_rules_on_hand_made_branch_lists():
    """Official semantics: branches listed in ``self_attn_list`` are passed through uncontrolled."""
    # rigid, rigid, non-rigid, global (shape_change = not rigid)
    sc = [False, False, True, True]
    assert ma.self_attn_list(sc) == [0, 1]  # the demo's computed list: the rigid branches
    assert ma.self_controlled(sc) == [False, False, True, True]
    assert ma.self_attn_list(sc, "demo") == [1, 0] and ma.self_controlled(sc, "demo") == [False, False, True, True]
    assert ma.self_controlled([True, False, True], "official_list") == [True, False, True]
    assert ma.self_controlled([True, False, True], "demo") == [False, False, True]  # [1, 0] whatever the kinds
    assert ma.self_controlled([True], "demo") == [False]
    assert ma.self_controlled([True, False, True], "rigid") == [False, True, False]
    assert ma.self_controlled([True, False], "none") == [False, False]
    with pytest.raises(ValueError, match="unknown self-attention rule"):
        ma.self_attn_list([True], "all")


def test_editor_applies_the_self_attention_rule_to_its_branches():
    from multiedits.grouping import Branch

    pipe = tiny_pipe(1)
    src = "a small blue square at the top on a black background"
    b0 = Branch([], "rigid", src.replace("blue", "red"), src, ["red"])
    b1 = Branch([], "non_rigid", b0.prompt.replace("square", "circle"), b0.prompt, ["circle"])
    image = torch.rand(1, 3, 16, 16) * 2 - 1
    for rule, want in (("official_list", [False, True]), ("demo", [False, False]), ("rigid", [True, False])):
        cfg = EditConfig(steps=2, self_attn_rule=rule)
        _, ctrl = multi_branch_edit(pipe, image, src, [b0, b1], cfg, torch.Generator().manual_seed(0))
        assert [b.self_control for b in ctrl.branches] == want, rule


def test_uncontrolled_branch_rows_pass_through_the_exchange():
    """With branch 0 uncontrolled and branch 1 controlled, rows S, B0, M0 keep their own q / k / v."""
    heads, R = 1, 5
    mk = lambda c: ma.BranchControl("replace", torch.eye(3), None, c, torch.zeros(3), torch.zeros(3), 3)  # noqa: E731
    ctrl = ma.MultiBranchController([mk(False), mk(True)], num_steps=10, step=0)
    q = torch.arange(2.0 * R).view(2 * R, 1, 1)
    q1, k1, v1 = ctrl.exchange_qkv(q, q + 100, q + 200, heads)
    rows = q1.view(2, R)
    assert torch.equal(rows[:, :3], q.view(2, R)[:, :3])  # S, B0, M0 untouched
    assert torch.equal(rows[:, 3], q.view(2, R)[:, 1]) and torch.equal(rows[:, 4], q.view(2, R)[:, 1])  # base B0
    none = ma.MultiBranchController([mk(False), mk(False)], num_steps=10, step=0)
    assert torch.equal(none.exchange_qkv(q, q + 100, q + 200, heads)[0], q)


def test_self_attention_exchange_uses_the_previous_branch_as_base():
    heads, R = 1, 5  # [S, B0, M0, B1, M1]
    ctrl = ma.MultiBranchController([ma.BranchControl("replace", torch.eye(3), None, True, torch.zeros(3),
                                                      torch.zeros(3), 3)] * 2, num_steps=10, step=0)
    q = torch.arange(2.0 * R).view(2 * R, 1, 1)
    k, v = q + 100, q + 200
    q1, k1, v1 = ctrl.exchange_qkv(q, k, v, heads)
    cond = slice(R, 2 * R)  # conditional half: rows 5..9 hold values 5..9
    assert q1[cond].flatten().tolist() == [5, 5, 5, 6, 6]  # B0, M0 <- S ; B1, M1 <- B0 (row 6)
    assert v1[cond].flatten().tolist() == [205, 206, 205, 208, 206]  # B keeps its values, M takes the base's
    ctrl.step = 9  # late: M queries with its branch's queries into the base's keys / values
    q1, k1, v1 = ctrl.exchange_qkv(q, k, v, heads)
    assert q1[cond].flatten().tolist() == [5, 6, 6, 8, 8] and k1[cond].flatten().tolist() == [105, 106, 105, 108, 106]


def test_local_blend_selects_edit_mutual_and_source_states():
    L = 6
    local = torch.tensor([0, 1, 0, 0, 0, 0.0])
    keep = torch.tensor([0, 0, 1, 0, 0, 0.0])
    ctrl = ma.MultiBranchController([ma.BranchControl("replace", torch.eye(L), None, True, local, keep, 5)], 10)
    maps = torch.zeros(2, 2, L)
    maps[0, 0, 1] = 1.0  # the edited word attends to the top-left quarter
    maps[1, 1, 2] = 1.0  # the kept word attends to the bottom-right quarter
    ctrl.maps_s[0][2] = maps.reshape(4, L)
    ctrl.maps_m[0][2] = maps.reshape(4, L)
    x_t, x_m, x_s = torch.full((1, 1, 4, 4), 1.0), torch.full((1, 1, 4, 4), 2.0), torch.full((1, 1, 4, 4), 3.0)
    out = ctrl.local_blend(0, x_s, x_t, x_m, abar_t=0.9, last=False)
    expected = torch.full((4, 4), 2.0)
    expected[:2, :2] = 1.0  # where(mask_e, x_t, x_m)
    expected[2:, 2:] = 3.0  # then where(mask_m, x_s, .)
    assert torch.equal(out[0, 0], expected)


# ----------------------------------------------------------------------------------------------- metrics
def test_unedited_metrics_zero_the_masked_pixels_as_pie_bench():
    src = -torch.ones(3, 16, 16)  # 0 in [0, 1]
    out = torch.zeros(3, 16, 16)  # 0.5 in [0, 1]
    mask = np.zeros((16, 16), bool)
    mask[:, :8] = True  # half the image is edited: zeros in both, counted in the mean
    m = unedited_metrics(out, src, mask)
    assert m["mse"] == pytest.approx(0.25 * 0.5)
    assert m["psnr"] == pytest.approx(10 * np.log10(1 / 0.125))
    assert unedited_metrics(out, src, np.ones((16, 16), bool))["psnr"] is None


def test_parallel_uses_one_pass_and_sequential_one_per_aspect():
    pipe = tiny_pipe(2)
    rec = attribute_edit_records(1, 5, 3, image_size=16)[0]
    src, _, _ = render_record(rec)
    image = torch.from_numpy(src).permute(2, 0, 1)[None].float() / 127.5 - 1
    aspects = aspects_from_edit_action(rec["edit_action"])
    cfg = EditConfig(steps=3, grouping_steps=2)
    par = parallel_edit(pipe, image, rec["source_prompt"], aspects, cfg)
    seq = sequential_edit(pipe, image, rec["source_prompt"], aspects, cfg)
    one = single_branch_edit(pipe, image, rec["source_prompt"], aspects, cfg)
    assert par.unet_calls == 5 and seq.unet_calls == 3 * 5 and one.unet_calls == 3  # no grouping pass
    assert par.unet_images == 2 * 2 * (1 + 2) + 3 * 2 * (1 + 2 * len(par.branches))  # CFG halves x rows
    assert par.image.shape == seq.image.shape == (1, 3, 16, 16)
    assert par.branch_images.shape[0] == len(par.branches) >= 1
    assert par.branches[-1].prompt == rec["target_prompt"]
    assert sum(len(b.aspects) for b in par.branches) == 3


def test_an_lcm_scheduler_config_gets_lcm_timesteps(tmp_path):
    from diffusers import DDIMScheduler, LCMScheduler

    from multiedits.editor import _timesteps

    pipe = tiny_pipe(3)
    ddim = _timesteps(pipe, 15)
    assert ddim == sorted(ddim, reverse=True) and len(ddim) == 15
    LCMScheduler().save_pretrained(tmp_path)
    pipe.scheduler = DDIMScheduler.from_pretrained(tmp_path)  # how conddiff's loader reads an LCM folder
    lcm = LCMScheduler()
    lcm.set_timesteps(15, original_inference_steps=50)
    assert _timesteps(pipe, 15) == [int(t) for t in lcm.timesteps] != ddim


def test_cross_attention_maps_of_a_branch_follow_its_base_then_its_own():
    heads, R, L = 1, 3, 4  # [S, B0, M0], 2 queries, 4 tokens
    W = torch.tensor([[1.0, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 1]])  # swap tokens 1 and 2
    ctrl = ma.MultiBranchController([ma.BranchControl("replace", W, None, False, torch.zeros(L), torch.zeros(L), 4)],
                                    num_steps=10, cross_replace_steps=0.3)
    probs = torch.rand(2 * R * heads, 2, L).softmax(-1)
    ctrl.step = 1  # (1 + 1) / 10 <= 0.3: replaced by the base's maps, mapped token by token
    out = ctrl.edit_cross(probs, heads).view(2, R, 2, L)
    p = probs.view(2, R, 2, L)
    assert torch.allclose(out[1, 1], p[1, 0] @ W) and torch.equal(out[0], p[0]) and torch.equal(out[1, 2], p[1, 2])
    ctrl.step = 5  # past cross_replace_steps: the branch keeps its own maps
    assert torch.equal(ctrl.edit_cross(probs, heads), probs)
    # refinement: aligned tokens take the base's (re-indexed) map, new tokens (alpha 0) keep their own
    mapper, alpha = torch.tensor([0, 1, 1, 2]), torch.tensor([1.0, 1.0, 0.0, 1.0])
    ref = ma.MultiBranchController([ma.BranchControl("refine", mapper, alpha, False, torch.zeros(L), torch.zeros(L),
                                                     4)], num_steps=10, step=0)
    out = ref.edit_cross(probs, heads).view(2, R, 2, L)
    assert torch.allclose(out[1, 1], p[1, 0][:, mapper] * alpha + p[1, 1] * (1 - alpha))


def test_replacement_mapper_spreads_multi_token_words_and_aligns_the_tail():
    class Tok:  # words of one or two "tokens": a word's token count is its number of '+'-separated parts
        def __call__(self, text, add_special_tokens=True):
            return type("Out", (), {"input_ids": [0] * (len(text.split("+")) + 2 * add_special_tokens)})()

    W = ma.replacement_mapper(Tok(), "a red cat", "a pur+ple cat", 8)
    assert W[0, 0] == 1 and W[1, 1] == 1  # <bos>, "a"
    assert W[2, 2] == W[2, 3] == 1.0  # "red" (1 token) spreads over the two tokens of "pur+ple"
    assert W[3, 4] == 1 and W[4, 5] == 1 and W[5, 6] == 1  # "cat", then <eos> / padding shifted by one
    with pytest.raises(ValueError, match="equal word counts"):
        ma.replacement_mapper(Tok(), "a red cat", "a cat", 8)


# ------------------------------------------------------------------------------- multi-object benchmark
def test_scene_records_have_the_requested_aspect_counts_on_distinct_objects():
    from multiedits.data import scene_records

    recs = scene_records(4, 0, counts=(1, 2, 3))
    assert [len(r["aspects"]) for r in recs] == [1] * 4 + [2] * 4 + [3] * 4
    for r in recs:
        aspects = aspects_from_edit_action(r["edit_action"], r["blended_words"])
        assert apply_edits(r["source_prompt"], aspects) == r["target_prompt"]
        assert all(a.noun for a in aspects)  # the object noun from blended_words
    assert any(len(r["source_scene"]["objects"]) >= 2 for r in recs)


def test_scene_aspect_scores_by_hand():
    from conddiff.classifier import scene_of
    from multiedits.metrics import scene_aspect_scores

    src = sw.Scene("gray", (sw.ShapeObject("circle", "red", "big", "left"),
                            sw.ShapeObject("square", "blue", "small", "top")))
    tgt = sw.Scene("black", (sw.ShapeObject("circle", "green", "big", "left"),
                             sw.ShapeObject("square", "blue", "small", "top"),
                             sw.ShapeObject("triangle", "white", "big", "right")))
    rec = {"source_scene": src.to_dict(), "target_scene": tgt.to_dict(), "aspects": [
        {"type": "change_colour", "object": 0, "attribute": "colour", "source": "red", "target": "green"},
        {"type": "add_object", "object": 2, "attribute": "object", "source": None, "target": "..."},
        {"type": "change_background", "object": None, "attribute": "background", "source": "gray",
         "target": "black"}]}
    perfect = scene_of(tgt.to_dict())
    s = scene_aspect_scores(perfect, rec)
    assert s["aspect_acc"] == 1.0 and s["all_aspects"] == 1.0 and s["kept_acc"] == 1.0
    unedited = scene_of(src.to_dict())  # nothing edited: no aspect right; the top square and empty bottom kept
    s = scene_aspect_scores(unedited, rec)
    assert s["aspect_acc"] == 0.0 and s["kept_acc"] == 1.0
    wrong = scene_of(tgt.to_dict())
    wrong["objects"]["top"] = None  # the untouched square vanished, and an object appeared at the bottom
    wrong["objects"]["bottom"] = {"shape": "circle", "colour": "red", "size": "big", "texture": "plain"}
    s = scene_aspect_scores(wrong, rec)
    assert s["aspect_acc"] == 1.0 and s["kept_acc"] == 0.0  # 3 facts of the square + 1 empty slot: all lost
    wrong["objects"]["bottom"] = None
    assert scene_aspect_scores(wrong, rec)["kept_acc"] == 0.25  # only the empty bottom slot holds
