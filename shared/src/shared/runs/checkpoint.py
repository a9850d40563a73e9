"""Atomic checkpoint sets: every file of a checkpoint is written, then a manifest, then the set is swapped in.

A checkpoint set named ``last`` is a folder::

    checkpoints/last/
      weights.safetensors   every module's state, keys "<module>.<parameter>"
      state.json            the trainer's JSON state (step, epoch, best metric...) and python/numpy RNG state
      side.pt               optimizer/scheduler/scaler state and torch RNG state (tensors only; weights_only=True)
      <extra>/...           folders written by ``save_pretrained``-style writers, if any
      manifest.json         written last: every file's size and sha256, the step, the time

Saving writes the set into ``checkpoints/.last.partial/``, fsyncs it, moves the current ``last/`` to
``last.prev/``, moves the new set to ``last/`` and only then deletes ``last.prev/``. A kill at any point leaves
either ``last/`` or ``last.prev/`` complete. Loading checks the manifest (sizes and sha256) and falls back to
``last.prev/`` when ``last/`` is missing or torn, saying so; if neither is complete it refuses with an error that
names the file that does not match. Nothing non-finite is ever saved (:class:`DivergenceError`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from shared.runs.errors import CheckpointError, CheckpointMissing, DivergenceError

MANIFEST = "manifest.json"
WEIGHTS = "weights.safetensors"
STATE = "state.json"
SIDE = "side.pt"
#: fsync every file before the manifest and the swap (survives power loss, not just a killed process).
FSYNC = True


def _stage(name: str) -> None:
    """A named point inside the save window (the kill tests replace this to die exactly there)."""


@dataclass(frozen=True)
class CheckpointInfo:
    """Where a loaded set lives and what its manifest says."""

    name: str
    path: Path
    step: Any
    created: str
    fell_back: bool  # True when the newest set was torn and the previous complete one was used

    def summary(self, run_path: Path) -> dict[str, Any]:
        return {"name": self.name, "folder": os.path.relpath(self.path, run_path), "step": self.step,
                "created": self.created, "fell_back_to_previous": self.fell_back}


# ---- RNG state ------------------------------------------------------------------------------------------
def rng_state() -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    json_state = {"numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
                  "python": [py_version, list(py_state), py_gauss]}
    tensors = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"torch_cuda_{i}"] = state
    return json_state, tensors


def set_rng_state(json_state: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
    kind, keys, pos, has_gauss, cached = json_state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    py_version, py_state, py_gauss = json_state["python"]
    random.setstate((py_version, tuple(py_state), py_gauss))
    torch.set_rng_state(tensors["torch_cpu"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("torch_cuda_")]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


# ---- helpers ----------------------------------------------------------------------------------------------
def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    if not FSYNC:
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _non_finite(tree: Any, prefix: str) -> str | None:
    """The name of the first floating tensor in a (nested) state that holds NaN/Inf, or None."""
    if isinstance(tree, torch.Tensor):
        if tree.is_floating_point() and not bool(torch.isfinite(tree).all()):
            return prefix
        return None
    if isinstance(tree, dict):
        items = tree.items()
    elif isinstance(tree, (list, tuple)):
        items = enumerate(tree)
    else:
        return None
    for key, value in items:
        found = _non_finite(value, f"{prefix}.{key}")
        if found:
            return found
    return None


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    if isinstance(obj, (np.ndarray, torch.Tensor)):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


# ---- save ---------------------------------------------------------------------------------------------------
def save_set(folder: Path, name: str, modules: dict[str, torch.nn.Module], *,
             optimizers: dict[str, Any] | None = None, state: dict[str, Any] | None = None,
             writers: dict[str, Callable[[Path], None]] | None = None) -> Path:
    """Write checkpoint set ``folder/name/`` atomically (see the module docstring) and return its path.

    Args:
        modules: ``{"model": model, ...}``; saved as one safetensors file.
        optimizers: objects with ``state_dict()`` (optimizers, schedulers, grad scalers).
        state: JSON trainer state; its ``step`` (or ``epoch``) is copied into the manifest.
        writers: ``{"unet": lambda d: unet.save_pretrained(d)}``: each writes a sub-folder of the set.

    Raises:
        DivergenceError: a module weight or optimizer state holds NaN/Inf (nothing is written).
    """
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"checkpoint name {name!r} must be a plain file name")
    tensors = {f"{key}.{k}": v.detach().cpu().clone().contiguous()
               for key, module in modules.items() for k, v in module.state_dict().items()}
    side_optim = {k: o.state_dict() for k, o in (optimizers or {}).items()}
    bad = _non_finite(tensors, "weights") or _non_finite(side_optim, "optimizer")
    if bad:
        raise DivergenceError(f"refusing to save checkpoint {name!r}: {bad} holds NaN/Inf. The previous checkpoint "
                              "is kept; the run stops here.")
    folder.mkdir(parents=True, exist_ok=True)
    final, prev, partial = folder / name, folder / f"{name}.prev", folder / f".{name}.partial"
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir()

    save_file(tensors, str(partial / WEIGHTS), metadata={"format": "pt"})
    _stage("weights")
    json_rng, tensor_rng = rng_state()
    torch.save({"optimizers": side_optim, "rng": tensor_rng}, partial / SIDE)
    _stage("side")
    (partial / STATE).write_text(json.dumps({"state": state or {}, "rng": json_rng}, default=_json_default))
    _stage("state")
    for sub, write in (writers or {}).items():
        write(partial / sub)
    files = sorted(p for p in partial.rglob("*") if p.is_file())
    for path in files:
        _fsync(path)
    step = (state or {}).get("step", (state or {}).get("epoch"))
    manifest = {"name": name, "step": step, "created": dt.datetime.now().isoformat(timespec="seconds"),
                "files": {p.relative_to(partial).as_posix(): {"size": p.stat().st_size, "sha256": _sha256(p)}
                          for p in files}}
    (partial / MANIFEST).write_text(json.dumps(manifest, indent=1, default=_json_default))
    _fsync(partial / MANIFEST)
    _stage("manifest")

    if final.exists():
        if prev.exists():
            shutil.rmtree(prev)
        os.rename(final, prev)
        _stage("moved-previous")
    os.rename(partial, final)
    _stage("moved-new")
    if prev.exists():
        shutil.rmtree(prev)
    return final


def non_finite_tensors(folder: str | Path) -> list[str]:
    """``"<file>:<tensor>"`` for every floating tensor holding NaN/Inf in the ``*.safetensors`` files under ``folder``.

    The divergence tests of every project call it on a stopped run: the answer must be ``[]``. A folder holding no
    safetensors file at all is an error, so the check cannot pass vacuously.
    """
    files = sorted(Path(folder).rglob("*.safetensors"))
    if not files:
        raise CheckpointMissing(f"no .safetensors file under '{folder}'; nothing to check")
    return [f"{path}:{key}" for path in files for key, tensor in load_file(path).items()
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())]


# ---- load ---------------------------------------------------------------------------------------------------
def verify_set(path: Path) -> dict[str, Any]:
    """The manifest of the set at ``path`` after checking every file's size and sha256 (CheckpointError if not)."""
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise CheckpointError(f"checkpoint set '{path}' is incomplete: no {MANIFEST} (the save was interrupted)")
    try:
        manifest = json.loads(manifest_path.read_text())
        files = manifest["files"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise CheckpointError(f"checkpoint manifest '{manifest_path}' is corrupt: {err}") from err
    for rel, expected in files.items():
        file = path / rel
        if not file.is_file():
            raise CheckpointError(f"checkpoint set '{path}' is torn: {rel} listed in the manifest is missing")
        if file.stat().st_size != expected["size"] or _sha256(file) != expected["sha256"]:
            raise CheckpointError(f"checkpoint set '{path}' is torn: {file} does not match its manifest "
                                  f"(size/sha256 differ; the file was changed or only partly written)")
    return manifest


def find_set(folder: Path, name: str) -> tuple[CheckpointInfo, str | None]:
    """The newest complete set called ``name`` and, when it is ``name.prev``, why ``name`` was passed over."""
    final, prev = folder / name, folder / f"{name}.prev"
    problem = None
    if final.is_dir():
        try:
            manifest = verify_set(final)
            return CheckpointInfo(name, final, manifest.get("step"), manifest.get("created", ""), False), None
        except CheckpointError as err:
            problem = str(err)
    else:
        problem = f"'{final}' does not exist"
    if prev.is_dir():
        try:
            manifest = verify_set(prev)
        except CheckpointError as err:
            raise CheckpointError(f"no complete checkpoint {name!r}: {problem}; and the previous set: {err}") from err
        return CheckpointInfo(name, prev, manifest.get("step"), manifest.get("created", ""), True), problem
    have = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")) \
        if folder.is_dir() else []
    error = CheckpointMissing if not final.exists() else CheckpointError
    raise error(f"no complete checkpoint {name!r} in '{folder}': {problem}; the folder has "
                          f"{have or 'no checkpoint sets'}")


def load_weights(path: str | Path, modules: dict[str, torch.nn.Module], strict: bool = True) -> None:
    """Load ``<module>.<param>`` weights from a safetensors file (or a checkpoint set folder) into ``modules``."""
    path = Path(path)
    if path.is_dir():
        path = path / WEIGHTS
    if not path.is_file():
        raise CheckpointMissing(f"checkpoint '{path}' does not exist; expected a .safetensors file written by train.py")
    try:
        tensors = load_file(path)
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"checkpoint '{path}' is corrupt or not a safetensors file: {err}") from err
    for key, module in modules.items():
        prefix = f"{key}."
        state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        if not state and strict:
            raise CheckpointError(f"checkpoint '{path}' holds no weights for module {key!r}; "
                                  f"it has {sorted({k.split('.')[0] for k in tensors})}")
        try:
            module.load_state_dict(state, strict=strict)
        except RuntimeError as err:
            raise CheckpointError(f"checkpoint '{path}' does not match module {key!r} (wrong config?): {err}") from err


def load_set(info: CheckpointInfo, modules: dict[str, torch.nn.Module], *,
             optimizers: dict[str, Any] | None = None, restore_rng: bool = True) -> dict[str, Any]:
    """Load a verified set into ``modules``/``optimizers`` (and the RNGs); return the trainer's JSON state."""
    load_weights(info.path / WEIGHTS, modules)
    try:
        side = torch.load(info.path / SIDE, map_location="cpu", weights_only=True)
        meta = json.loads((info.path / STATE).read_text())
    except Exception as err:  # torch raises several unpickling errors on a damaged file
        raise CheckpointError(f"checkpoint side state in '{info.path}' is unreadable: {err}") from err
    for key, opt in (optimizers or {}).items():
        if key not in side["optimizers"]:
            raise CheckpointError(f"checkpoint '{info.path}' has no state for {key!r}; "
                                  f"it has {list(side['optimizers'])}")
        opt.load_state_dict(side["optimizers"][key])
    if restore_rng:
        set_rng_state(meta["rng"], side["rng"])
    return meta["state"]
