"""NL-RAN blocks: the non-local block (Wang et al. 2018), RAN attention modules (Wang et al. 2017), shapes."""

from __future__ import annotations

import pytest
import torch

from nlran.baselines import CBAM3d, COVNet, cbam_resnet3d, resnet3d
from nlran.model import NLRAN, AttentionModule3d, NonLocalBlock3d, ResidualUnit3d, SoftMaskBranch3d, attention_residual

TINY = dict(widths=(4, 8, 8, 16, 16))


def test_nonlocal_block_is_identity_at_initialisation():
    torch.manual_seed(0)
    block = NonLocalBlock3d(8)
    x = torch.randn(2, 8, 4, 5, 6)
    for mode in (block.train, block.eval):
        mode()
        assert torch.equal(block(x), x)
    with torch.no_grad():
        block.bn.weight.fill_(1.0)
    block.train()
    assert not torch.allclose(block(x), x)


def _nonlocal_by_einsum(block: NonLocalBlock3d, x: torch.Tensor, scale: float) -> torch.Tensor:
    """Eqs. 1, 3, 6 of Wang et al. 2018, written independently of the block: the 2x2x2 max-pool by reshaping
    into blocks, the 1x1x1 convolutions and the pairwise sums as einsums."""
    b, c, d, h, w = x.shape
    pooled = x.reshape(b, c, d // 2, 2, h // 2, 2, w // 2, 2).amax(dim=(3, 5, 7))

    def conv1(conv, t):
        return torch.einsum("oc,bc...->bo...", conv.weight[:, :, 0, 0, 0], t) + conv.bias[None, :, None, None, None]

    theta = conv1(block.theta, x).flatten(2)  # (B, C', N)
    phi, g = conv1(block.phi, pooled).flatten(2), conv1(block.g, pooled).flatten(2)  # (B, C', N')
    f = torch.exp(scale * torch.einsum("bci,bcj->bij", theta, phi))  # embedded Gaussian, Eq. 3
    y = torch.einsum("bij,bcj->bci", f / f.sum(-1, keepdim=True), g)  # Eq. 1 with C(x) = sum_j f
    z = conv1(block.w_z, y.reshape(b, -1, d, h, w))
    bn = block.bn
    shape = (1, -1, 1, 1, 1)
    z = (z - bn.running_mean.view(shape)) / torch.sqrt(bn.running_var + bn.eps).view(shape)
    return z * bn.weight[None, :, None, None, None] + bn.bias[None, :, None, None, None] + x  # Eq. 6


@pytest.mark.parametrize("scale", [True, False])
def test_nonlocal_with_subsampling_matches_an_independent_einsum(scale):
    torch.manual_seed(1)
    block = NonLocalBlock3d(6, inter_channels=4, sub_sample=True, scale=scale).eval().requires_grad_(False)
    for p in (block.theta.weight, block.phi.weight, block.g.weight, block.w_z.weight):
        p.normal_()  # away from the 0.01 init, so the affinities are far from uniform
    block.bn.weight.fill_(1.3)
    block.bn.bias.fill_(0.2)
    block.bn.running_mean.uniform_(-0.5, 0.5)
    block.bn.running_var.uniform_(0.5, 2.0)
    x = torch.randn(2, 6, 4, 6, 4)
    expected = _nonlocal_by_einsum(block, x, 4 ** -0.5 if scale else 1.0)
    torch.testing.assert_close(block(x), expected, rtol=1e-4, atol=1e-4)
    assert block.affinity(x).shape == (2, 4 * 6 * 4, 2 * 3 * 2)  # keys: the max-pooled input
    other = NonLocalBlock3d(6, inter_channels=4, scale=not scale).eval().requires_grad_(False)
    other.load_state_dict(block.state_dict())
    assert not torch.allclose(other(x), expected, atol=1e-3)  # the d^-1/2 switch changes the output


def test_nonlocal_official_initialisation_statistics():
    """video-nonlocal-net: theta / phi / g / out convs N(0, 0.01) with zero bias, output BN gamma 0; at
    initialisation the block is the identity and its softmax nearly uniform over the keys."""
    torch.manual_seed(2)
    block = NonLocalBlock3d(256)  # 128 inner channels: 256 * 128 weights per conv
    for conv in (block.theta, block.phi, block.g, block.w_z):
        w = conv.weight.detach()
        assert abs(w.std().item() - 0.01) < 0.0005 and abs(w.mean().item()) < 0.0005
        assert not conv.bias.detach().any()
    assert not block.bn.weight.detach().any() and not block.bn.bias.detach().any()
    x = torch.randn(2, 256, 8, 8, 8)
    attn = block.eval().affinity(x)  # (2, 512, 64)
    entropy = -(attn * attn.log()).sum(-1).mean()
    assert entropy > 0.99 * torch.log(torch.tensor(64.0))  # uniform: log 64 = 4.16 nats
    assert torch.equal(block(x), x)
    # Re-initialising a model (He init of every other conv) keeps the official init of the block.
    model = NLRAN(widths=(4, 8, 16, 32, 32))
    assert abs(model.nonlocal_block.theta.weight.std().item() - 0.01) < 0.003


def test_attention_residual_learning():
    """RAN Eq. 3: H = (1 + M) * T; M = 0 gives T, M = 1 doubles T."""
    trunk = torch.randn(2, 3, 4, 4, 4)
    assert torch.equal(attention_residual(torch.zeros_like(trunk), trunk), trunk)
    assert torch.equal(attention_residual(torch.ones_like(trunk), trunk), 2 * trunk)
    mask = torch.full_like(trunk, 0.25)
    torch.testing.assert_close(attention_residual(mask, trunk), 1.25 * trunk)


@pytest.mark.parametrize("skips,size", [(0, (4, 4, 4)), (1, (8, 6, 10)), (2, (8, 8, 8)), (2, (7, 9, 5))])
def test_soft_mask_in_open_unit_interval_with_input_shape(skips, size):
    torch.manual_seed(2)
    branch = SoftMaskBranch3d(8, skips=skips)
    m = branch(torch.randn(2, 8, *size) * 3)
    assert m.shape == (2, 8, *size)
    assert (m > 0).all() and (m < 1).all()
    assert len(branch.skip) == skips and len(branch.down) == skips + 1


def test_attention_module_with_zero_mask_equals_its_trunk_path():
    torch.manual_seed(3)
    module = AttentionModule3d(8, skips=1).eval()
    x = torch.randn(1, 8, 8, 8, 8)
    module.mask.forward = lambda inp: torch.zeros_like(inp)  # M = 0
    out, _ = module(x)
    expected = module.post(module.trunk(module.pre(x)))
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize("size", [(16, 16, 16), (16, 32, 32), (24, 20, 28), (32, 32, 32)])
def test_nlran_shapes_and_attention_masks(size):
    # Training mode: BN uses batch statistics (at initialisation the running statistics are not yet
    # estimated, and eval-mode masks of an untrained network saturate to 0 / 1 in float32).
    torch.manual_seed(8)
    model = NLRAN(**TINY).train()
    x = torch.rand(2, 1, *size)
    logits, masks = model(x, return_attention=True)
    assert logits.shape == (2, 3)
    assert len(masks) == 3
    assert masks[0].shape[:2] == (2, 8) and masks[1].shape[1] == 8 and masks[2].shape[1] == 16
    assert all(((m > 0) & (m < 1)).all() for m in masks)
    assert torch.equal(model(x), logits)


def test_ablations_remove_their_part():
    full, no_nl, no_att = NLRAN(**TINY), NLRAN(**TINY, use_nonlocal=False), NLRAN(**TINY, use_attention=False)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert no_nl.nonlocal_block is None and count(no_nl) == count(full) - count(full.nonlocal_block)
    assert no_att.attention1.mask is None and count(no_att) < count(no_nl)
    _, masks = no_att.eval()(torch.randn(1, 1, 16, 16, 16), return_attention=True)
    assert masks == []


def test_nlran_rejects_a_non_volume_input():
    with pytest.raises(ValueError, match=r"\(B, C, D, H, W\)"):
        NLRAN(**TINY)(torch.randn(2, 16, 16, 16))
    with pytest.raises(ValueError, match="5 values"):
        NLRAN(widths=(4, 8, 16))


def test_baselines_map_volumes_to_three_logits():
    x = torch.randn(2, 1, 16, 24, 24)
    for model in (resnet3d((4, 8, 8, 16), (1, 1, 1, 1)), cbam_resnet3d((4, 8, 8, 16), (1, 1, 1, 1), reduction=2),
                  COVNet((4, 8, 8, 16), (1, 1, 1, 1))):
        assert model.eval()(x).shape == (2, 3)


def test_cpu_config_matches_stem_resolutions_parameters_and_flops():
    """configs/cpu.yaml: NL-RAN, the 3D ResNet and CBAM-3D share the stem (same conv, width and pool), run
    every stage at the same resolution, and have parameter counts within 2% and MACs within 15%."""
    from pathlib import Path

    from nlran.config import Config
    from nlran.engine import build_model, count_parameters, flops_per_volume
    from shared.runs.cli import apply_overrides, load_config_file

    cfg = apply_overrides(Config(), load_config_file(Path(__file__).resolve().parents[1] / "configs" / "cpu.yaml"))
    x = torch.rand(1, 1, *cfg.volume_size)
    stats = {}
    for arch in ("nlran", "resnet3d", "cbam3d"):
        model = build_model(apply_overrides(cfg, {"arch": arch})).eval()
        stem = model.stem[0]
        assert (stem.out_channels, stem.kernel_size, stem.stride) == (8, (3, 3, 3), (1, 1, 1))
        assert isinstance(model.stem[3], torch.nn.MaxPool3d)
        stages = ["unit1", "unit2", "unit3", "stage4"] if arch == "nlran" else ["layer1", "layer2", "layer3", "layer4"]
        shapes = []
        for name in stages:
            model.get_submodule(name).register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape[2:])))
        with torch.no_grad():
            model(x)
        stats[arch] = (shapes[:4], count_parameters(model), flops_per_volume(model, tuple(cfg.volume_size)))
    reference = stats["nlran"]
    assert reference[0] == [(12, 12, 12), (6, 6, 6), (3, 3, 3), (3, 3, 3)]
    for arch in ("resnet3d", "cbam3d"):
        shapes, params, macs = stats[arch]
        assert shapes == reference[0], arch
        assert abs(params / reference[1] - 1) < 0.02, (arch, params, reference[1])
        assert abs(macs / reference[2] - 1) < 0.15, (arch, macs, reference[2])


def test_covnet_max_pool_over_slices_ignores_slice_order():
    model = COVNet((4, 8, 8, 16), (1, 1, 1, 1)).eval()
    x = torch.randn(1, 1, 6, 16, 16)
    torch.testing.assert_close(model(x), model(x[:, :, torch.randperm(6)]))


def test_cbam_matches_its_equations():
    """Woo et al. 2018 Eqs. 2-3, computed independently."""
    torch.manual_seed(4)
    cbam = CBAM3d(4, reduction=2, kernel_size=3)
    x = torch.randn(1, 4, 3, 3, 3)
    mlp = lambda v: cbam.mlp(v[:, :, None, None, None])[:, :, 0, 0, 0]  # noqa: E731
    mc = torch.sigmoid(mlp(x.flatten(2).mean(2)) + mlp(x.flatten(2).max(2).values))
    f1 = x * mc[:, :, None, None, None]
    ms = torch.sigmoid(torch.nn.functional.conv3d(
        torch.stack([f1.mean(1), f1.max(1).values], 1), cbam.spatial.weight, cbam.spatial.bias, padding=1))
    torch.testing.assert_close(cbam(x), f1 * ms)


def test_final_units_sets_the_depth_of_stage_four():
    model = NLRAN(**TINY, final_units=0).eval()
    assert len(model.stage4) == 2 and len(model.stage4[1]) == 0
    assert model(torch.randn(1, 1, 16, 16, 16)).shape == (1, 3)
    assert len(NLRAN(**TINY).stage4[1]) == 2


def test_stage_strides_set_the_size_of_the_final_map():
    x = torch.randn(1, 1, 32, 32, 32)
    default, _ = NLRAN(**TINY).eval().features(x)  # RAN strides: 32^3 / 32 = 1^3
    cpu, masks = NLRAN(**TINY, stem_stride=1, stage_strides=(2, 2, 1)).eval().features(x)
    assert default.shape[2:] == (1, 1, 1) and cpu.shape[2:] == (4, 4, 4)
    assert [m.shape[2:] for m in masks] == [(16, 16, 16), (8, 8, 8), (4, 4, 4)]
    with pytest.raises(ValueError, match="stage_strides"):
        NLRAN(**TINY, stage_strides=(2, 2))


def test_init_is_he_normal_and_zero_init_units_start_as_identity():
    torch.manual_seed(5)
    model = NLRAN(widths=(8, 32, 64, 128, 256)).eval()
    conv = model.unit3.conv2  # 32 -> 32 channels (128 / expansion 4), 3x3x3: fan_out = 32 * 27
    assert abs(conv.weight.std().item() / (2 / (32 * 27)) ** 0.5 - 1) < 0.1
    units = [m for m in model.modules() if isinstance(m, ResidualUnit3d) and m.shortcut is None]
    x = torch.randn(2, 32, 4, 4, 4)
    assert units and all(not u.conv3.weight.detach().any() for u in units)
    torch.testing.assert_close(model.attention1.trunk(x), x)  # t = 2 identity units
    assert model.nonlocal_block.bn.weight.abs().sum() == 0  # the non-local block stays the identity too
    plain = NLRAN(widths=(8, 32, 64, 128, 256), zero_init_residual=False).eval()
    assert not torch.allclose(plain.attention1.trunk(x), x)


def _stem_to_head_gradient_ratio(model: NLRAN) -> float:
    """|dL/d(stem output)| / |dL/d(final features)| for one training-mode step on random volumes."""
    acts = {}

    def keep(name):
        def hook(module, inputs, output):
            output.retain_grad()
            acts[name] = output
        return hook

    model.stem.register_forward_hook(keep("stem"))
    model.final.register_forward_hook(keep("final"))
    torch.manual_seed(6)
    loss = torch.nn.functional.cross_entropy(model.train()(torch.rand(4, 1, 16, 16, 16)), torch.tensor([0, 1, 2, 0]))
    loss.backward()
    return float(acts["stem"].grad.norm() / acts["final"].grad.norm())


def test_gradient_reaching_the_stem_is_not_blown_up():
    """The defect that kept NL-RAN at chance: its deep stack of pre-activation units, each branch starting at
    full scale, multiplied the gradient by ~2 per unit on its way to the input (stem/head ratio in the
    hundreds), so every Adam step shook the early layers. Units that start as the identity keep it O(1)."""
    torch.manual_seed(7)
    layout = dict(widths=(8, 16, 32, 64, 128), stem_stride=1, stage_strides=(2, 2, 1))
    assert _stem_to_head_gradient_ratio(NLRAN(**layout)) < 10
    assert _stem_to_head_gradient_ratio(NLRAN(**layout, zero_init_residual=False)) > 20
