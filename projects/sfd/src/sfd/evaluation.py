"""Sample quality measures: sliced Wasserstein (2-D toy), a digits-classifier Fréchet distance, FID.

* 2-D toy: sliced Wasserstein distance (``shared.metrics``, 512 projections) to fresh true samples and to the
  teacher's high-NFE samples, and the mean L2 distance to the teacher's ODE endpoint from the same noise.
* digits: the Fréchet distance in the 128-d penultimate features of a small CNN classifier trained here on the
  real digits (:class:`DigitsClassifier`). It is *not* FID (no Inception network is involved).
* paper scale: FID proper with the Inception-v3 detector used by EDM/StyleGAN (TorchScript file
  ``inception-2015-12-05.pt``), loaded from a local path; nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# shared.metrics (scikit-learn, SciPy, scikit-image) is imported where it is used, so that ``--help`` and
# code paths without scoring do not pay for it.


def toy_scores(samples: torch.Tensor, data: torch.Tensor, reference: torch.Tensor) -> dict[str, float]:
    """SWD to the data, SWD to the teacher reference, and mean L2 to the reference from the same noise."""
    from shared.metrics import sliced_wasserstein

    s, d, r = samples.double().cpu().numpy(), data.double().cpu().numpy(), reference.double().cpu().numpy()
    return {"swd_data": sliced_wasserstein(s, d, n_projections=512),
            "swd_teacher": sliced_wasserstein(s, r, n_projections=512),
            "l2_teacher": float(np.linalg.norm(s - r, axis=1).mean())}


class DigitsClassifier(nn.Module):
    """Conv(1→32)-ReLU-Conv(32→64, stride 2)-ReLU-Linear(1024→128)-ReLU-Linear(128→10); features: the 128-d layer."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, stride=2, padding=1)
        self.fc = nn.Linear(64 * 16, 128)
        self.head = nn.Linear(128, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.conv2(F.relu(self.conv1(x))))
        return F.relu(self.fc(h.flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def train_digits_classifier(images: torch.Tensor, labels: torch.Tensor, steps: int = 400, seed: int = 0,
                            batch: int = 128, quiet: bool = True) -> tuple[DigitsClassifier, float]:
    """Train the feature network on 80% of the real digits (fixed seed); return it and held-out accuracy."""
    from shared.runs import progress

    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(images), generator=gen)
    n_train = int(0.8 * len(images))
    tr, te = perm[:n_train], perm[n_train:]
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = DigitsClassifier()
        opt = torch.optim.Adam(model.parameters(), lr=2e-3)
        for _ in progress(range(steps), desc="feature classifier", quiet=quiet, leave=False):
            idx = tr[torch.randint(len(tr), (batch,), generator=gen)]
            loss = F.cross_entropy(model(images[idx]), labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        acc = float((model(images[te]).argmax(1) == labels[te]).float().mean())
    return model, acc


@torch.no_grad()
def digits_features(classifier: DigitsClassifier, images: torch.Tensor) -> np.ndarray:
    """(N, 128) features of images in [−1, 1] (clamped to that range first, as an image would be)."""
    return classifier.features(images.clamp(-1, 1).float().cpu()).double().numpy()


def digits_scores(samples: torch.Tensor, real: torch.Tensor, reference: torch.Tensor,
                  classifier: DigitsClassifier) -> dict[str, float]:
    """Fréchet distance in classifier features to the real digits and to the teacher reference; L2 to it."""
    from shared.metrics import frechet_distance

    f_s = digits_features(classifier, samples)
    s, r = samples.double().cpu(), reference.double().cpu()
    return {"fd_data": frechet_distance(f_s, digits_features(classifier, real)),
            "fd_teacher": frechet_distance(f_s, digits_features(classifier, reference)),
            "l2_teacher": float((s - r).flatten(1).norm(dim=1).mean())}


class InceptionFID:
    """FID with the TorchScript Inception-v3 detector of EDM / StyleGAN2-ADA (``inception-2015-12-05.pt``).

    ``detector(images_uint8_nchw, return_features=True)`` gives the 2048-d pool features. The reference
    statistics are those of the real dataset (e.g. the 50,000 CIFAR-10 training images).
    """

    def __init__(self, path: str | Path, device: str | torch.device = "cpu"):
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"Inception detector '{path}' not found: FID needs the TorchScript file inception-2015-12-05.pt "
                "(the detector used by EDM and StyleGAN2-ADA). Put it there and pass its path; nothing is "
                "downloaded.")
        self.device = torch.device(device)
        self.detector = torch.jit.load(str(path), map_location=self.device).eval()

    @torch.no_grad()
    def features(self, images_uint8: np.ndarray | torch.Tensor, batch: int = 250) -> np.ndarray:
        """(N, 2048) features of uint8 images (N, H, W, 3) or (N, 3, H, W)."""
        x = torch.as_tensor(images_uint8)
        if x.dtype != torch.uint8:
            raise ValueError(f"FID expects uint8 images, got {x.dtype}")
        if x.shape[-1] == 3:
            x = x.permute(0, 3, 1, 2)
        feats = [self.detector(x[i:i + batch].to(self.device), return_features=True).cpu().double()
                 for i in range(0, len(x), batch)]
        return torch.cat(feats).numpy()

    def reference_stats(self, images_uint8) -> tuple[np.ndarray, np.ndarray]:
        from shared.metrics.distribution import gaussian_stats

        return gaussian_stats(self.features(images_uint8))

    def fid(self, images_uint8, ref_stats: tuple[np.ndarray, np.ndarray]) -> float:
        from shared.metrics.distribution import frechet_distance_from_stats, gaussian_stats

        mu, cov = gaussian_stats(self.features(images_uint8))
        return frechet_distance_from_stats(mu, cov, *ref_stats)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """Images in [−1, 1] (N, C, H, W) → uint8 (N, H, W, C), as the official ``sample.py`` saves them."""
    x = (images * 127.5 + 128).clamp(0, 255).to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()
