"""Shapes and invariants of every block; the official parameter count; pretrained-weight loading; the
from-scratch initialisation and BatchNorm statistics of the CPU default."""

from pathlib import Path

import pytest
import torch
import yaml

from definet.hrnet import HRNet, HRNetSpec, load_hrnet_pretrained
from definet.model import DFPL, REAM, SAFF, DeFINet, ModelConfig, UNet, count_parameters

SMALL = ModelConfig(stem_channels=4, stage1_planes=2, channels=(4, 8, 8, 8), fpn_out=8)
CPU_MODEL = yaml.safe_load((Path(__file__).resolve().parents[1] / "configs" / "cpu.yaml").read_text())["model"]


def test_official_parameter_count():
    """The paper configuration has exactly the official model's 2,822,958 parameters (module by module)."""
    model = DeFINet(ModelConfig())
    assert count_parameters(model.backbone) == 2_028_572
    assert count_parameters(model.dfpl) == 603_136
    assert count_parameters(model.ream) == 185_507
    assert count_parameters(model.saff) == 5_743
    assert count_parameters(model) == 2_822_958


@pytest.mark.parametrize("hw", [(40, 56), (24, 24)])
def test_block_shapes(hw):
    h, w = hw
    torch.manual_seed(0)
    model = DeFINet(SMALL).eval()
    x = torch.randn(2, 3, h, w)
    with torch.no_grad():
        feats = model.backbone(x)
        assert [f.shape for f in feats] == [(2, c, h // s, w // s) for c, s in zip((4, 8, 8, 8), (1, 2, 4, 8))]
        pyramid = model.dfpl(feats)
        assert [p.shape for p in pyramid] == [(2, 8, h // s, w // s) for s in (1, 2, 4, 8)]
        low_mid, edge = model.ream(*pyramid[:3])
        assert low_mid.shape == (2, 8, h, w) and edge.shape == (2, 1, h, w)
        attention = model.ream.reverse_attention(pyramid[2])
        assert attention.shape == (2, 1, h // 4, w // 4) and (attention > 0).all() and (attention < 1).all()
        weights = model.saff.fusion_weights(pyramid[3])
        assert weights.shape == (2, 2, 2, h, w)
        edge_logits, seg_logits = model(x)
    assert edge_logits.shape == seg_logits.shape == (2, 1, h, w)


def test_input_size_must_be_multiple_of_8():
    model = DeFINet(SMALL)
    with pytest.raises(ValueError, match="multiples of 8"):
        model(torch.randn(1, 3, 36, 40))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        model(torch.randn(1, 1, 32, 32))
    with pytest.raises(ValueError, match="multiples of 8"):
        UNet((4, 8, 8, 8))(torch.randn(1, 3, 33, 32))


def test_ablation_and_baseline_outputs():
    x = torch.randn(1, 3, 32, 32)
    no_ream = DeFINet(ModelConfig(**{**SMALL.__dict__, "use_ream": False}))
    edge, seg = no_ream(x)
    assert edge is None and seg.shape == (1, 1, 32, 32) and no_ream.ream is None
    edge, seg = UNet((4, 8, 8, 8))(x)
    assert edge is None and seg.shape == (1, 1, 32, 32)


def test_saff_weighted_pair_fusion():
    """SAFF output = head(sum_l w[:, k, l] * [high_k, lowmid_k][l]) -- checked by recomputing it by hand."""
    torch.manual_seed(1)
    saff = SAFF(8).eval()
    low_mid, high = torch.randn(1, 8, 16, 16), torch.randn(1, 8, 2, 2)
    with torch.no_grad():
        w = saff.fusion_weights(high)
        lm, hi = saff.low_mid(low_mid), saff.high(high)
        fused = torch.stack([w[:, k, 0] * hi[:, k] + w[:, k, 1] * lm[:, k] for k in range(2)], 1)
        assert torch.allclose(saff(low_mid, high), saff.head(fused), atol=1e-6)


def test_dfpl_and_ream_standalone():
    dfpl = DFPL((4, 8, 8, 8), 8)
    feats = [torch.randn(1, c, 32 // s, 32 // s) for c, s in zip((4, 8, 8, 8), (1, 2, 4, 8))]
    out = dfpl(feats)
    assert [o.shape[1] for o in out] == [8] * 4
    fused, edge = REAM(8)(*out[:3])
    assert fused.shape == (1, 8, 32, 32) and edge.shape == (1, 1, 32, 32)


def test_pretrained_loading(tmp_path):
    spec = HRNetSpec(stem_channels=4, stage1_planes=2, channels=(4, 8, 8, 8))
    src = HRNet(spec)
    state = {f"model.{k}": v for k, v in src.state_dict().items()}
    state["classifier.weight"] = torch.zeros(3)  # classification-head keys are ignored
    torch.save(state, tmp_path / "hrnet.pth")
    dst = HRNet(spec)
    assert load_hrnet_pretrained(dst, tmp_path / "hrnet.pth") == []
    assert all(torch.equal(a, b) for a, b in zip(src.state_dict().values(), dst.state_dict().values()))
    with pytest.raises(FileNotFoundError, match="hrnet_w18_small_v2.pth"):
        load_hrnet_pretrained(dst, tmp_path / "missing.pth")
    with pytest.raises(ValueError, match="does not match"):
        load_hrnet_pretrained(HRNet(HRNetSpec(stem_channels=4, stage1_planes=2, channels=(6, 8, 8, 8))),
                              tmp_path / "hrnet.pth")


def _pre_bn_variances(backbone: HRNet, x: torch.Tensor) -> dict[str, float]:
    """Channel-mean variance (unbiased, as BN's running_var) of the input of every backbone BatchNorm."""
    seen: dict[str, float] = {}
    hooks = [m.register_forward_hook(lambda m, i, o, n=n: seen.__setitem__(n, float(i[0].var((0, 2, 3)).mean())))
             for n, m in backbone.named_modules() if isinstance(m, torch.nn.BatchNorm2d)]
    with torch.no_grad():
        backbone(x)
    for h in hooks:
        h.remove()
    return seen


def test_official_init_starves_batchnorm_from_scratch_but_cpu_default_does_not():
    """With the official N(0, 0.001) conv init and no ImageNet weights, deep pre-BN variances fall far below
    BN's eps = 1e-5, so BN cannot re-normalise them (this starved the old CPU runs). The CPU default's
    Kaiming init keeps every backbone BN input near unit scale."""
    x = torch.randn(2, 3, 16, 16)
    torch.manual_seed(0)
    official = _pre_bn_variances(DeFINet(ModelConfig(**{**CPU_MODEL, "hrnet_init": "official"})).backbone.train(), x)
    assert min(official.values()) < 1e-5
    torch.manual_seed(0)
    cpu = _pre_bn_variances(DeFINet(ModelConfig(**CPU_MODEL)).backbone.train(), x)
    assert min(cpu.values()) > 1e-2
    with pytest.raises(ValueError, match="unknown init"):
        DeFINet(ModelConfig(**{**SMALL.__dict__, "hrnet_init": "xavier"}))


@pytest.mark.parametrize("momentum, converged", [(0.01, False), (None, True)])
def test_bn_running_statistics_follow_training(momentum, converged):
    """Eval-mode BN uses running statistics. After 50 training-mode passes they must match the batch
    statistics; with the official HRNet momentum 0.01 (tuned for ~60k steps) 0.99^50 = 60% of the initial
    running_var = 1 remains, so eval-mode features of a short run are wrongly scaled (the old CPU runs kept
    ~24% after 144 steps and predicted nearly the same map for every image). ``None``: the CPU default."""
    cfg = dict(CPU_MODEL) if momentum is None else {**CPU_MODEL, "hrnet_bn_momentum": momentum}
    torch.manual_seed(0)
    backbone = DeFINet(ModelConfig(**cfg)).backbone.train()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        for _ in range(50):
            backbone(x)
    batch = _pre_bn_variances(backbone, x)
    errors = [abs(float(m.running_var.mean()) - batch[n]) / batch[n]
              for n, m in backbone.named_modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert (max(errors) < 0.1) == converged
