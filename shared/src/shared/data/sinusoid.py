"""Contaminated sinusoid regression: the MAML few-shot regression benchmark with heterogeneous tasks.

A *task* is a function ``y = A * sin(w * (x - phase))`` observed at ``n_support`` support and ``n_query``
query points ``x ~ U[x_range]`` (Finn et al., 2017: ``A ~ U[0.1, 5]``, ``phase ~ U[0, pi]``,
``x ~ U[-5, 5]``, ``w = 1``). Each task independently belongs to one of four kinds (the heterogeneity of
HeTRoM, arXiv 2410.18894):

* ``CLEAN``   (0): the standard family;
* ``NOISY``   (1): the standard family plus Gaussian label noise ``N(0, noise_std^2)`` on support *and*
  query targets (noise in a task's training samples);
* ``OUTLIER`` (2): a different family, amplitude times ``outlier_amp_scale`` and frequency
  ``w = outlier_freq_scale`` (a task distinctively different from most others);
* ``EASY``    (3): the standard family with a small amplitude ``A ~ U[easy_amp_range]`` (low loss).

Kinds are drawn i.i.d. per task with probabilities ``(1 - noisy - outlier - easy, noisy, outlier, easy)``.

Schema of :func:`sample_tasks` (``n`` tasks, all float32 unless noted)::

    x_support (n, n_support, 1)   y_support (n, n_support, 1)   f_support (n, n_support, 1) noise-free targets
    x_query   (n, n_query, 1)     y_query   (n, n_query, 1)     f_query   (n, n_query, 1)   noise-free targets
    amplitude (n,)  phase (n,)  frequency (n,)  kind (n,) int64 in {0, 1, 2, 3}

The generator is vectorised numpy and deterministic given the ``numpy.random.Generator``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CLEAN, NOISY, OUTLIER, EASY = 0, 1, 2, 3
KIND_NAMES = ("clean", "noisy", "outlier", "easy")


@dataclass(frozen=True)
class SinusoidFamily:
    """The task distribution: the MAML sinusoid family plus contamination rates (all defaults: clean)."""

    amp_range: tuple[float, float] = (0.1, 5.0)
    phase_range: tuple[float, float] = (0.0, float(np.pi))
    x_range: tuple[float, float] = (-5.0, 5.0)
    noisy_rate: float = 0.0
    outlier_rate: float = 0.0
    easy_rate: float = 0.0
    noise_std: float = 3.0
    outlier_amp_scale: float = 5.0
    outlier_freq_scale: float = 3.0
    easy_amp_range: tuple[float, float] = (0.1, 0.5)

    def __post_init__(self) -> None:
        rates = (self.noisy_rate, self.outlier_rate, self.easy_rate)
        if any(r < 0 for r in rates) or sum(rates) > 1 + 1e-9:
            raise ValueError(f"contamination rates must be >= 0 and sum to <= 1, got noisy={self.noisy_rate}, "
                             f"outlier={self.outlier_rate}, easy={self.easy_rate}")
        for name in ("amp_range", "phase_range", "x_range", "easy_amp_range"):
            lo, hi = getattr(self, name)
            if not lo <= hi:
                raise ValueError(f"{name} must be (low, high) with low <= high, got {(lo, hi)}")
        if self.noise_std < 0:
            raise ValueError(f"noise_std must be >= 0, got {self.noise_std}")

    @property
    def kind_probabilities(self) -> np.ndarray:
        """Probabilities of (clean, noisy, outlier, easy)."""
        p = np.array([0.0, self.noisy_rate, self.outlier_rate, self.easy_rate])
        p[0] = max(0.0, 1.0 - p[1:].sum())
        return p / p.sum()


def sample_tasks(rng: np.random.Generator, n_tasks: int, n_support: int = 10, n_query: int = 10,
                 family: SinusoidFamily = SinusoidFamily()) -> dict[str, np.ndarray]:
    """Draw ``n_tasks`` sinusoid tasks (see the module docstring for the returned schema).

    Args:
        rng: the random generator (the only source of randomness).
        n_tasks: number of tasks (a meta-batch, or a fixed test set).
        n_support: support (training) points per task (K-shot).
        n_query: query (validation) points per task.
        family: the task distribution and its contamination rates.
    """
    if n_tasks < 1 or n_support < 1 or n_query < 1:
        raise ValueError(f"n_tasks, n_support and n_query must be >= 1, got {n_tasks}, {n_support}, {n_query}")
    kind = rng.choice(4, size=n_tasks, p=family.kind_probabilities).astype(np.int64)
    amplitude = rng.uniform(*family.amp_range, size=n_tasks)
    easy = kind == EASY
    amplitude[easy] = rng.uniform(*family.easy_amp_range, size=int(easy.sum()))
    outlier = kind == OUTLIER
    amplitude[outlier] *= family.outlier_amp_scale
    frequency = np.where(outlier, family.outlier_freq_scale, 1.0)
    phase = rng.uniform(*family.phase_range, size=n_tasks)

    x = rng.uniform(*family.x_range, size=(n_tasks, n_support + n_query, 1))
    f = amplitude[:, None, None] * np.sin(frequency[:, None, None] * (x - phase[:, None, None]))
    noise = rng.normal(0.0, family.noise_std, size=f.shape) * (kind == NOISY)[:, None, None]
    y = f + noise

    as32 = lambda a: a.astype(np.float32)  # noqa: E731
    return {
        "x_support": as32(x[:, :n_support]), "y_support": as32(y[:, :n_support]), "f_support": as32(f[:, :n_support]),
        "x_query": as32(x[:, n_support:]), "y_query": as32(y[:, n_support:]), "f_query": as32(f[:, n_support:]),
        "amplitude": as32(amplitude), "phase": as32(phase), "frequency": as32(frequency), "kind": kind,
    }
