"""EDM preconditioning, the raw networks, the SFD-v step condition and the diffusers DDPM teacher."""

import math

import pytest
import torch
from torch import nn

from sfd.networks import DiffusersVPDenoiser, EDMPrecond, MLPNet, TinyUNet, positional_embedding, student_from_teacher


class ConstNet(nn.Module):
    """F(x, c_noise) = c_noise (broadcast), to read the preconditioning coefficients off D."""

    step_condition = False

    def forward(self, x, c_noise, num_steps=None):
        self.seen_x = x
        return c_noise.reshape(-1, *([1] * (x.ndim - 1))).expand_as(x)


def test_edm_preconditioning_coefficients_by_hand():
    sd, sigma = 0.5, 2.0
    net = ConstNet()
    x = torch.full((1, 3), 1.5, dtype=torch.float64)
    out = EDMPrecond(net, sd)(x, sigma)
    c_skip = sd**2 / (sigma**2 + sd**2)
    c_out = sigma * sd / math.sqrt(sigma**2 + sd**2)
    c_in = 1 / math.sqrt(sigma**2 + sd**2)
    c_noise = math.log(sigma) / 4
    assert torch.allclose(out, torch.full_like(x, c_skip * 1.5 + c_out * c_noise))
    assert torch.allclose(net.seen_x, x * c_in)


@pytest.mark.parametrize("net,shape", [(MLPNet(2, 32, 2), (5, 2)), (MLPNet(64, 32, 2), (5, 1, 8, 8)),
                                       (TinyUNet(1, 16), (5, 1, 8, 8))])
def test_network_shapes_and_per_sample_sigma(net, shape):
    d = EDMPrecond(net, 0.5)
    x = torch.randn(shape)
    assert d(x, 1.0).shape == shape
    sig = torch.linspace(0.1, 10, shape[0])
    out = d(x, sig)
    assert out.shape == shape
    assert torch.allclose(out[1:2], d(x[1:2], sig[1]), atol=1e-5)  # each sample uses its own σ
    with pytest.raises(ValueError, match="sigma has"):
        d(x, torch.ones(shape[0] + 1))


@pytest.mark.parametrize("make", [lambda sc=False: MLPNet(2, 32, 2, step_condition=sc),
                                  lambda sc=False: TinyUNet(1, 16, step_condition=sc)])
def test_sfdv_student_equals_teacher_at_init_and_uses_the_step(make):
    torch.manual_seed(0)
    teacher = EDMPrecond(make(), 0.5)
    for p in teacher.parameters():  # make the zero-initialised output layers non-trivial
        p.data.add_(0.05 * torch.randn_like(p))
    student = student_from_teacher(teacher, lambda step_condition: make(step_condition), step_condition=True)
    x = torch.randn(4, 2) if isinstance(teacher.net, MLPNet) else torch.randn(4, 1, 8, 8)
    assert torch.allclose(student(x, 3.0, 4), teacher(x, 3.0), atol=1e-6)
    with pytest.raises(ValueError, match="step-conditioned"):
        student(x, 3.0)
    for m in student.modules():  # perturb the affine_step layers: the output now depends on the step count
        if m.__class__.__name__ == "AffineStep":
            m.proj.weight.data.normal_(0, 0.1)
    assert not torch.allclose(student(x, 3.0, 4), student(x, 3.0, 7))


def test_positional_embedding():
    e = positional_embedding(torch.tensor([0.0, 4.0]), 8)
    assert e.shape == (2, 8)
    assert torch.allclose(e[0], torch.tensor([1.0] * 4 + [0.0] * 4))
    assert torch.allclose(e[1, 0], torch.cos(torch.tensor(4.0)))
    assert torch.allclose(e[1, 4], torch.sin(torch.tensor(4.0)))


def _tiny_ddpm(tmp_path, prediction_type="epsilon"):
    from diffusers import DDPMScheduler, UNet2DModel

    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=8, in_channels=3, out_channels=3, layers_per_block=1,
                       block_out_channels=(8, 16), down_block_types=("DownBlock2D", "DownBlock2D"),
                       up_block_types=("UpBlock2D", "UpBlock2D"), norm_num_groups=4)
    unet.save_pretrained(tmp_path / "unet")
    DDPMScheduler(num_train_timesteps=1000, prediction_type=prediction_type).save_pretrained(tmp_path / "scheduler")
    return unet


def test_diffusers_ddpm_teacher_vp_to_ve(tmp_path):
    unet = _tiny_ddpm(tmp_path)
    teacher = DiffusersVPDenoiser.from_pretrained(tmp_path)
    from diffusers import DDPMScheduler

    abar = DDPMScheduler(num_train_timesteps=1000).alphas_cumprod
    k = 500
    sigma = math.sqrt((1 - abar[k]) / abar[k])  # exactly the σ of discrete step k
    assert float(teacher.timestep(torch.tensor([sigma]))) == pytest.approx(k, abs=1e-3)
    x = torch.randn(2, 3, 8, 8) * sigma
    with torch.no_grad():
        eps = unet(x / math.sqrt(1 + sigma**2), torch.full((2,), float(k))).sample
        out = teacher(x, sigma)
    assert torch.allclose(out, x - sigma * eps, atol=1e-4)
    assert teacher.sigma_max > 80 and teacher.sigma_min < 0.02
    # below the table σ(τ = 0) the timestep clamps at 0
    assert float(teacher.timestep(torch.tensor([0.006]))) == 0.0


def test_diffusers_teacher_missing_folder_names_the_weights(tmp_path):
    with pytest.raises(FileNotFoundError, match="UNet2DModel"):
        DiffusersVPDenoiser.from_pretrained(tmp_path / "nothing")


def test_lpips_needs_local_weights(tmp_path):
    from sfd.lpips import LPIPS

    with pytest.raises(FileNotFoundError, match="vgg16-397923af.pth"):
        LPIPS.from_files(tmp_path)
