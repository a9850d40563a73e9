"""Slots compose: inversion + P2P local blend + classifier guidance in one sampler run, each contribution checked."""

import torch

from conddiff import attention as attn_lib
from conddiff.classifier import AttributeClassifier, ClassifierConfig
from conddiff.guidance import ClassifierGuidance, log_prob_of
from conddiff.inversion import DDIMInversion, SDEdit
from conddiff.sampler import sample
from conddiff.testing import PROMPT, tiny_pipe

TARGET = PROMPT.replace("red", "blue")
SCALE = 200.0  # a random classifier has tiny gradients


class Recording:
    """Wraps a component and records (input, output) of one of its methods."""

    def __init__(self, inner, method: str):
        self.inner, self.calls = inner, []
        self._method = method

    def __getattr__(self, name):
        attr = getattr(self.inner, name)
        if name != self._method:
            return attr

        def wrapped(ctx, x_prev):
            out = attr(ctx, x_prev)
            self.calls.append({"x_in": x_prev.detach().clone(), "x_out": out.detach().clone(), "x_t": ctx.x.detach(),
                               "eps": ctx.eps.detach().clone(), "t": ctx.t, "abar_t": ctx.abar_t,
                               "abar_prev": ctx.abar_prev, "sigma": ctx.sigma, "clip": ctx.clip_x0})
            return out
        return wrapped


def _setup(scale: float):
    pipe = tiny_pipe()
    torch.manual_seed(1)
    clf = AttributeClassifier(ClassifierConfig(channels=(8, 16), noise_aware=True, image_size=16)).eval()
    src = torch.rand(1, 3, 16, 16) * 2 - 1
    tok = pipe.tokenizer
    colour_src = tok(PROMPT).input_ids.index(tok.convert_tokens_to_ids("red"))
    p2p = attn_lib.PromptToPrompt("replace", mapper=torch.eye(32), cross_replace_steps=0.5, self_replace_steps=0.5,
                                  blend_tokens=([colour_src], [colour_src]), blend_threshold=0.95, blend_pool=0,
                                  start_blend=0.0)
    guidance = ClassifierGuidance(clf, {"colour": torch.tensor([2, 2])}, scale)
    return pipe, clf, src, p2p, guidance


def _run(pipe, src, p2p, guidance):
    inv = DDIMInversion(src.repeat(2, 1, 1, 1), [PROMPT, PROMPT])
    out = sample(pipe, [PROMPT, TARGET], steps=4, inversion=inv, attention=p2p, guidance=guidance)
    return out, inv


def test_guidance_adds_its_term_to_the_blended_step_and_inversion_sets_the_start():
    pipe, clf, src, p2p, guidance = _setup(scale=SCALE)
    blend = Recording(p2p, "after_step")
    guide = Recording(guidance, "guide")
    out, inv = _run(pipe, src, blend, [guide])
    assert len(guide.calls) == 4 and len(blend.calls) == 4
    # clipping defaults to off with DDIM inversion (an exact inverse), and the run starts at the inverted x_T
    assert not any(c["clip"] for c in guide.calls)
    assert torch.equal(guide.calls[0]["x_t"], inv.trajectory[-1])
    blended_somewhere, term = False, 0.0
    for b, g in zip(blend.calls, guide.calls):
        # the local blend's contribution survives: guidance receives the blended state ...
        assert torch.equal(g["x_in"], b["x_out"])
        blended_somewhere |= not torch.allclose(b["x_out"], b["x_in"])
        # ... and adds exactly its own term c_t (ε̂ - ε̃), ε̂ - ε̃ = -s √(1-ᾱ_t) ∇ log p (independent autograd)
        x = g["x_t"].clone().requires_grad_(True)
        logp = log_prob_of(clf(x, torch.full((2,), g["t"])), guidance.targets).sum()
        (grad,) = torch.autograd.grad(logp, x)
        d_eps = -SCALE * (1 - g["abar_t"]) ** 0.5 * grad
        c_t = (1 - g["abar_prev"] - g["sigma"] ** 2) ** 0.5 - g["abar_prev"] ** 0.5 * (1 - g["abar_t"]) ** 0.5 / g[
            "abar_t"] ** 0.5
        assert torch.allclose(g["x_out"] - g["x_in"], c_t * d_eps, rtol=1e-3, atol=1e-4)
        term = max(term, float((g["x_out"] - g["x_in"]).abs().max()))
    assert term > 1e-3  # the guidance term is not empty
    assert blended_somewhere  # the local blend did something that guidance then kept
    # the source row (blend keeps it, guidance adds to it) still differs from an unguided run only by the term
    pipe2, _, _, p2p2, _ = _setup(scale=0.0)
    plain, _ = _run(pipe2, src, p2p2, [])
    assert not torch.allclose(out, plain, atol=1e-4)


def test_guidance_scale_zero_leaves_the_composed_run_unchanged():
    pipe, _, src, p2p, guidance = _setup(scale=0.0)
    with_zero, _ = _run(pipe, src, p2p, [guidance])
    pipe, _, src, p2p, _ = _setup(scale=0.0)
    without, _ = _run(pipe, src, p2p, [])
    assert torch.equal(with_zero, without)


def test_two_guidance_terms_add():
    """Two guidance components: the second receives the first's output and adds its own term."""
    pipe, clf, src, _, g1 = _setup(scale=5.0)
    g2 = ClassifierGuidance(clf, {"shape": torch.tensor([1])}, 5.0)
    r1, r2 = Recording(g1, "guide"), Recording(g2, "guide")
    g1.targets = {"colour": torch.tensor([2])}
    sample(pipe, [PROMPT], steps=3, x_T=torch.randn(1, 3, 16, 16), guidance=[r1, r2])
    for a, b in zip(r1.calls, r2.calls):
        assert torch.equal(b["x_in"], a["x_out"]) and not torch.allclose(b["x_out"], b["x_in"])


def test_clip_default_per_inversion_mechanism():
    pipe = tiny_pipe()
    src = torch.rand(1, 3, 16, 16) * 2 - 1

    class Probe:
        def __init__(self):
            self.seen = set()

        def correct(self, ctx, x_prev):
            self.seen.add(ctx.clip_x0)
            return x_prev

    def clip_used(**kw):
        probe = Probe()
        sample(pipe, [PROMPT], steps=2, correction=[probe], **kw)
        return probe.seen

    assert clip_used(inversion=DDIMInversion(src, [PROMPT])) == {False}  # exact inverse: off by default
    assert clip_used(inversion=DDIMInversion(src, [PROMPT]), clip_x0=True) == {True}  # an explicit value wins
    assert clip_used(inversion=SDEdit(src, 0.5)) == {True}  # stochastic: keeps the pixel default
    assert clip_used(x_T=torch.randn(1, 3, 16, 16)) == {True}


def test_scene_judge_labels_and_reading_by_hand():
    import numpy as np

    from conddiff.classifier import (
        ABSENT,
        SLOT_ATTRIBUTES,
        AttributeClassifier,
        ClassifierConfig,
        read_scenes,
        scene_of,
        slot_labels_of,
    )
    from shared.data import shapes_world as sw

    scene = sw.Scene("gray", (sw.ShapeObject("circle", "red", "big", "right", "checked"),
                              sw.ShapeObject("square", "blue", "small", "top")))
    labels = slot_labels_of(sw.render_scenes([scene]))
    assert SLOT_ATTRIBUTES["shape@right"][labels["shape@right"][0]] == "circle"
    assert SLOT_ATTRIBUTES["texture@right"][labels["texture@right"][0]] == "checked"
    assert SLOT_ATTRIBUTES["colour@top"][labels["colour@top"][0]] == "blue"
    assert SLOT_ATTRIBUTES["shape@left"][labels["shape@left"][0]] == ABSENT
    assert sw.BACKGROUNDS[labels["background"][0]] == "gray"
    want = scene_of(scene.to_dict())
    assert want["objects"]["left"] is None and want["objects"]["right"]["texture"] == "checked"
    # a judge whose heads output the labels reads the scene back exactly
    judge = AttributeClassifier(ClassifierConfig(channels=(8, 16), image_size=32, slots=True)).eval()
    with torch.no_grad():
        for k, head in judge.heads.items():
            head.weight.zero_()
            head.bias.copy_(torch.nn.functional.one_hot(labels[k][:1], head.out_features)[0].float() * 10)
    assert read_scenes(judge, torch.zeros(1, 3, 32, 32))[0] == want
    assert np.all([k in judge.heads for k in SLOT_ATTRIBUTES])
