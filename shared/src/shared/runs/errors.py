"""The errors of the run machinery, and the divergence guard.

Every entry point turns these into a one-paragraph message on stderr and a non-zero exit status
(:func:`shared.runs.entrypoint`): ``UsageError`` and ``CheckpointError`` exit 2, ``DivergenceError`` exits 3.
"""

from __future__ import annotations

import math
from numbers import Real
from typing import Any

import torch


class UsageError(ValueError):
    """A bad option or input found before anything was written (unknown key, unused ``--data-root``...)."""


class CheckpointError(ValueError):
    """A checkpoint set that is missing, torn (its manifest does not match its files) or does not fit the model."""


class CheckpointMissing(CheckpointError, FileNotFoundError):
    """The checkpoint (file or set) asked for does not exist."""


class DivergenceError(RuntimeError):
    """A non-finite loss, gradient norm, metric or weight: the run stops before anything non-finite is saved."""


def _is_finite(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return bool(torch.isfinite(value).all()) if value.is_floating_point() or value.is_complex() else True
    if isinstance(value, bool):
        return True
    if isinstance(value, Real):
        return math.isfinite(float(value))
    return True


def guard_finite(step: int | str, **quantities: Any) -> None:
    """Raise :class:`DivergenceError` naming ``step`` and the first non-finite quantity.

    Call it on the loss (and gradient norm) of every step, before ``optimizer.step()``::

        guard_finite(step, loss=loss, grad_norm=grad_norm)
    """
    for name, value in quantities.items():
        if not _is_finite(value):
            shown = value.item() if isinstance(value, torch.Tensor) and value.numel() == 1 else (
                "a tensor with non-finite entries" if isinstance(value, torch.Tensor) else value)
            raise DivergenceError(f"training diverged at step {step}: {name} = {shown}. The run stopped before "
                                  "saving anything non-finite; its last checkpoint is the last finite state. Lower "
                                  "the learning rate or check the inputs, then start again (or --resume).")
