"""Each sampling mechanism's update rule against hand-computed cases, on toy tensors and a tiny model."""

import math

import pytest
import torch

from conddiff import attention as attn_lib
from conddiff.blending import ClassifierFreeGuidance, ComposableDiffusion, cfg_combine, composable_combine
from conddiff.correction import ILVR, RePaint, low_pass, repaint_time_path
from conddiff.diffusion import add_noise, ddim_inversion_step, ddim_sigma, ddim_step, ddpm_loss, eps_from_x0, predict_x0
from conddiff.guidance import ClassifierGuidance, LossGuidance, classifier_guided_eps, measurement_norm
from conddiff.inversion import DDIMInversion, SDEdit
from conddiff.pipeline import Pipeline
from conddiff.revising import DDNM, Colorization, Inpainting, SuperResolution, range_null_projection
from conddiff.sampler import ddim_grid, sample
from conddiff.testing import PROMPT, tiny_pipe

torch.manual_seed(0)


class ConstantEpsPipe(Pipeline):
    """ε_θ independent of x (and of the prompt unless ``by_prompt``): exact inverses hold."""

    def __init__(self, eps_value: torch.Tensor):
        base = tiny_pipe()
        super().__init__(base.unet, base.text_encoder, base.tokenizer, base.scheduler, None, 2, 16)
        self.eps_value = eps_value

    def eps(self, x, t, emb):
        return self.eps_value.expand_as(x).clone()




# ------------------------------------------------------------------------------------------- equations
def test_x0_and_noising_are_inverse():
    x0, eps = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    abar = torch.tensor([0.9, 0.2])
    xt = add_noise(x0, eps, abar)
    assert torch.allclose(xt[0], math.sqrt(0.9) * x0[0] + math.sqrt(0.1) * eps[0])
    assert torch.allclose(predict_x0(xt, eps, abar), x0, atol=1e-5)
    assert torch.allclose(eps_from_x0(xt, x0, abar), eps, atol=1e-5)


def test_ddim_step_by_hand_and_sigma():
    x0, eps = torch.full((1, 1, 1, 1), 0.5), torch.full((1, 1, 1, 1), -1.0)
    out = ddim_step(x0, eps, abar_prev=0.64, sigma=0.0)
    assert out.item() == pytest.approx(0.8 * 0.5 + 0.6 * -1.0)
    # η = 1 between consecutive steps is DDPM's posterior std: σ² = (1 - ᾱ_{t-1}) / (1 - ᾱ_t) · β_t
    abar_t, abar_prev = 0.5, 0.6
    beta = 1 - abar_t / abar_prev
    assert ddim_sigma(abar_t, abar_prev, 1.0) ** 2 == pytest.approx((1 - abar_prev) / (1 - abar_t) * beta)
    assert ddim_sigma(abar_t, abar_prev, 0.0) == 0.0


def test_ddim_inversion_inverts_the_ddim_step_for_x_independent_eps():
    x_t, eps = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    x_next = ddim_inversion_step(x_t, eps, 0.8, 0.3)
    back = ddim_step(predict_x0(x_next, eps, 0.3), eps, 0.8)
    assert torch.allclose(back, x_t, atol=1e-5)


def test_min_snr_weighting():
    pred, eps = torch.zeros(2, 1, 1, 1), torch.ones(2, 1, 1, 1)
    abar = torch.tensor([0.9, 0.1])  # SNR 9 and 1/9
    assert ddpm_loss(pred, eps, abar, None).item() == pytest.approx(1.0)
    assert ddpm_loss(pred, eps, abar, 5.0).item() == pytest.approx((5 / 9 + 1) / 2, rel=1e-5)


def test_cfg_and_composable_combinations():
    eu, ec, e2 = torch.tensor([1.0]), torch.tensor([3.0]), torch.tensor([-1.0])
    assert cfg_combine(eu, ec, 1.0).item() == 3.0  # s = 1: the conditional ε
    assert cfg_combine(eu, ec, 0.0).item() == 1.0
    assert cfg_combine(eu, ec, 2.5).item() == pytest.approx(1 + 2.5 * 2)  # (1 + w) ε_c - w ε_∅, w = 1.5
    assert composable_combine(eu, [ec], [2.5]).item() == cfg_combine(eu, ec, 2.5).item()  # one concept = CFG
    assert composable_combine(eu, [ec, e2], [2.0, -1.0]).item() == pytest.approx(1 + 2 * 2 - 1 * (-2))


@pytest.mark.parametrize("op", [Inpainting((torch.rand(1, 1, 8, 8) > 0.5).float()), SuperResolution(2),
                                Colorization()])
def test_ddnm_range_null_decomposition_reproduces_the_measurement(op):
    x_true, x0_hat = torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8, 8)
    y = op.A(x_true)
    x0 = range_null_projection(x0_hat, y, op)
    assert torch.allclose(op.A(x0), y, atol=1e-5)  # consistency A x̂_0 = y
    assert torch.allclose(op.A(op.A_pinv(op.A(x0_hat))), op.A(x0_hat), atol=1e-5)  # A A† A = A
    # the null-space part of x̂_0 is untouched
    null = lambda v: v - op.A_pinv(op.A(v))  # noqa: E731
    assert torch.allclose(null(x0), null(x0_hat), atol=1e-5)


def test_classifier_guidance_eps_and_dps_step_size():
    eps, grad = torch.tensor([1.0]), torch.tensor([2.0])
    assert classifier_guided_eps(eps, grad, 0.75, 3.0).item() == pytest.approx(1 - 3 * 0.5 * 2)
    # DPS: ∇‖y - A x‖ = -(y - A x)/‖y - A x‖ (for A = I): ζ_t = ζ / ‖y - A x̂_0‖ times the squared-loss gradient
    x = torch.tensor([[[[3.0, 4.0]]]], requires_grad=True)
    loss = measurement_norm(Inpainting(torch.ones(1, 1, 1, 2)), torch.zeros(1, 1, 1, 2))(x)
    (g,) = torch.autograd.grad(loss.sum(), x)
    assert loss.item() == pytest.approx(5.0) and torch.allclose(g, x.detach() / 5.0)


def test_repaint_schedule_matches_the_official_jump_rule():
    path = repaint_time_path(5, jump_length=2, jump_n_sample=2)
    states = [path[0][0]] + [j for _, j in path]
    # get_schedule_jump(t_T=6, jump_length=2, jump_n_sample=2) visits 5 4 3 2 1 0 with jumps at 0 and 2
    assert states == [5, 4, 3, 2, 3, 4, 3, 2, 1, 0, 1, 2, 1, 0, -1]
    assert repaint_time_path(3, 1, 1) == [(3, 2), (2, 1), (1, 0), (0, -1)]


def test_low_pass_is_idempotent():
    x = torch.randn(2, 3, 8, 8)
    assert torch.allclose(low_pass(low_pass(x, 4), 4), low_pass(x, 4), atol=1e-6)


# ------------------------------------------------------------------------------- the sampler, composed
def test_sampler_ddim_inversion_round_trip_with_constant_eps():
    pipe = ConstantEpsPipe(torch.randn(1, 3, 16, 16) * 0.5)
    src = torch.rand(2, 3, 16, 16) * 2 - 1
    out = sample(pipe, [PROMPT] * 2, steps=10, inversion=DDIMInversion(src, [PROMPT] * 2))
    assert torch.allclose(out, src, atol=1e-4)


def test_sampler_runs_the_slots_in_the_survey_order():
    calls = []

    class Rec:
        def __init__(self, name):
            self.name, self.controller = name, attn_lib.AttentionStore()

        def start(self, ctx):
            calls.append("inversion")
            return torch.zeros(1, 3, 16, 16), len(ctx.grid) - 1

        def begin_step(self, ctx):
            calls.append("attention")

        def after_step(self, ctx, x):
            return x

        def predict_eps(self, ctx):
            calls.append("blending")
            return torch.zeros_like(ctx.x)

        def reverse_step(self, ctx, eps):
            calls.append("process")
            return ctx.x

        def guide(self, ctx, x):
            calls.append("guidance")
            return x

        def correct(self, ctx, x):
            calls.append("correction")
            return x

    r = Rec("all")
    sample(tiny_pipe(), [PROMPT], steps=2, inversion=r, attention=r, blending=r, process=r, guidance=[r],
           correction=[r])
    order = ["attention", "blending", "process", "guidance", "correction"]
    assert calls == ["inversion"] + order * 2


def test_repaint_keeps_the_known_region_exactly_and_ddnm_is_consistent():
    pipe = tiny_pipe()
    src = torch.rand(2, 3, 16, 16) * 2 - 1
    known = torch.zeros(1, 1, 16, 16)
    known[..., :, :8] = 1
    out = sample(pipe, [PROMPT] * 2, steps=4, correction=[RePaint(src, known, 2, 2)], generator=torch.manual_seed(1))
    assert torch.allclose(out * known, src * known, atol=1e-6)
    sr = SuperResolution(2)
    out = sample(pipe, [PROMPT] * 2, steps=4, process=DDNM(sr, sr.A(src)), eta=0.85, generator=torch.manual_seed(1))
    assert torch.allclose(sr.A(out), sr.A(src), atol=1e-5)


def test_ilvr_output_matches_the_reference_low_frequencies():
    pipe = tiny_pipe()
    ref = torch.rand(2, 3, 16, 16) * 2 - 1
    out = sample(pipe, [PROMPT] * 2, steps=3, correction=[ILVR(ref, 4)], generator=torch.manual_seed(2))
    assert torch.allclose(low_pass(out, 4), low_pass(ref, 4), atol=1e-5)
    assert not torch.allclose(out, ref, atol=1e-2)


def test_sdedit_starts_at_t0_and_full_strength_equals_plain_sampling_from_noise():
    pipe = ConstantEpsPipe(torch.zeros(1, 3, 16, 16))
    src = torch.rand(1, 3, 16, 16) * 2 - 1
    grid = ddim_grid(1000, 10)
    x, index = SDEdit(src, 0.35).start(type("C", (), {"pipe": pipe, "grid": grid, "abar": lambda s, i: float(
        pipe.alphas_cumprod[grid[i]]), "randn": lambda s, v: torch.zeros_like(v)})())
    assert grid[index] == 300 and torch.allclose(x, src * pipe.alphas_cumprod[300].sqrt().float(), atol=1e-6)
    with pytest.raises(ValueError, match="strength"):
        SDEdit(src, 0.0).start(None)


def test_guidance_components_change_the_sample_and_scale_zero_does_not():
    pipe = tiny_pipe()
    from conddiff.classifier import AttributeClassifier, ClassifierConfig
    clf = AttributeClassifier(ClassifierConfig(channels=(8, 16), noise_aware=True, image_size=16)).eval()
    targets = {"colour": torch.tensor([0])}
    kw = dict(steps=3, generator=None, x_T=torch.randn(1, 3, 16, 16))
    base = sample(pipe, [PROMPT], **kw)
    assert torch.allclose(sample(pipe, [PROMPT], guidance=[ClassifierGuidance(clf, targets, 0.0)], **kw), base)
    assert not torch.allclose(sample(pipe, [PROMPT], guidance=[ClassifierGuidance(clf, targets, 50.0)], **kw), base)
    dps = LossGuidance(measurement_norm(SuperResolution(2), torch.zeros(1, 3, 8, 8)), 0.5)
    guided = sample(pipe, [PROMPT], guidance=[dps], **kw)
    assert guided.abs().mean() != base.abs().mean()


def test_cfg_scale_one_equals_conditional_and_composable_one_concept_equals_cfg():
    pipe = tiny_pipe()
    kw = dict(steps=3, x_T=torch.randn(1, 3, 16, 16))
    plain = sample(pipe, [PROMPT], **kw)
    assert torch.allclose(sample(pipe, [PROMPT], blending=ClassifierFreeGuidance(1.0), **kw), plain, atol=1e-5)
    cfg = sample(pipe, [PROMPT], blending=ClassifierFreeGuidance(3.0), **kw)
    comp = sample(pipe, [PROMPT], blending=ComposableDiffusion([PROMPT], [3.0]), **kw)
    assert torch.allclose(cfg, comp, atol=1e-5) and not torch.allclose(cfg, plain, atol=1e-4)


def test_x0_clipping_keeps_pixel_samples_in_range_and_can_be_disabled():
    pipe = ConstantEpsPipe(torch.full((1, 3, 16, 16), 3.0))  # a wildly wrong ε: x̂_0 leaves [-1, 1]
    x_T = torch.randn(1, 3, 16, 16)
    clipped = sample(pipe, [PROMPT], steps=4, x_T=x_T)
    raw = sample(pipe, [PROMPT], steps=4, x_T=x_T, clip_x0=False)
    assert clipped.abs().max() <= 1 + 1e-6 and raw.abs().max() > 1.5
