"""NL-RAN blocks: the non-local block (Wang et al. 2018), RAN attention modules (Wang et al. 2017), shapes."""

from __future__ import annotations

import pytest
import torch

from nlran.baselines import CBAM3d, COVNet, CBAMResNet3d, resnet3d
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


def test_nonlocal_embedded_gaussian_matches_a_loop_computation():
    """y_i = sum_j softmax_j(theta_i . phi_j) g_j, z = BN(W_z y) + x (Eqs. 1, 3, 6), no subsampling."""
    torch.manual_seed(1)
    block = NonLocalBlock3d(4, inter_channels=2, sub_sample=False).eval().requires_grad_(False)
    block.bn.weight.fill_(1.0)
    x = torch.randn(1, 4, 2, 2, 3)
    theta = block.theta(x)[0].reshape(2, -1)
    phi = block.phi(x)[0].reshape(2, -1)
    g = block.g(x)[0].reshape(2, -1)
    n = theta.shape[1]
    y = torch.zeros(2, n)
    for i in range(n):
        w = torch.tensor([float(torch.exp(theta[:, i] @ phi[:, j])) for j in range(n)])
        w = w / w.sum()
        y[:, i] = (g * w).sum(1)
    expected = block.bn(block.w_z(y.reshape(1, 2, 2, 2, 3))) + x
    torch.testing.assert_close(block(x), expected, rtol=1e-4, atol=1e-5)
    assert torch.allclose(block.affinity(x).sum(-1), torch.ones(1, n))


def test_nonlocal_subsampling_shrinks_keys_not_output():
    block = NonLocalBlock3d(8, sub_sample=True)
    x = torch.randn(1, 8, 4, 4, 4)
    assert block.affinity(x).shape == (1, 64, 8)
    assert block(x).shape == x.shape


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
    for model in (resnet3d((4, 8, 8, 16), (1, 1, 1, 1)), CBAMResNet3d((4, 8, 8, 16), (1, 1, 1, 1), reduction=2),
                  COVNet((4, 8, 8, 16), (1, 1, 1, 1))):
        assert model.eval()(x).shape == (2, 3)


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
