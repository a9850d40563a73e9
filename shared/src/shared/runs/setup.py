"""Seeding, device selection and progress bars."""

from __future__ import annotations

import os
import random
import sys
from collections.abc import Iterable

import numpy as np
import torch
from tqdm.auto import tqdm

DEVICES = ("auto", "cpu", "cuda", "mps")


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed python's ``random``, numpy's global RNG and torch (CPU and all CUDA devices).

    With ``deterministic=True`` also ask torch for deterministic kernels (``warn_only`` so that ops without
    a deterministic implementation still run) and turn cuDNN benchmarking off. PyTorch does not promise
    identical results across releases or between CPU and GPU.
    """
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def select_device(name: str = "auto") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; an explicit device that is not available is an error."""
    if name not in DEVICES:
        raise ValueError(f"unknown device {name!r}; expected one of {DEVICES}")
    has_mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda requested but torch.cuda.is_available() is False; use --device cpu or auto")
    if name == "mps" and not has_mps:
        raise ValueError("--device mps requested but the MPS backend is not available; use --device cpu or auto")
    return torch.device(name)


def progress(iterable: Iterable | None = None, *, total: int | None = None, desc: str | None = None,
             quiet: bool = False, **kwargs):
    """A tqdm progress bar, disabled with ``quiet`` or when stderr is not a terminal (CI logs stay clean)."""
    return tqdm(iterable, total=total, desc=desc, disable=quiet or not sys.stderr.isatty(), dynamic_ncols=True,
                **kwargs)
