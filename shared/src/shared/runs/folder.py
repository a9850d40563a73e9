"""The run folder of the project contract, and safetensors checkpoints with resumable side state.

Layout::

    runs/<YYYYmmdd>-<HHMMSS>-<tag>/
      config.json        {"config": {...resolved dataclass...}, "meta": {versions, argv, created}}
      metrics.jsonl      one JSON object per logged step/epoch
      log.txt            the printed log lines
      checkpoints/
        <name>.safetensors   weights of every module, keys "<module>.<parameter>"
        <name>.json          step/epoch, python and numpy RNG state, anything JSON the trainer adds
        <name>.pt            optimizer/scheduler state and torch RNG state (tensors only; weights_only=True)
      eval.json

Every file is written to a temporary name and moved into place, so a run killed mid-write keeps its
previous checkpoint intact.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import platform
import random
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from shared.runs.cli import apply_overrides, config_to_dict


def package_versions(*packages: str) -> dict[str, str]:
    """Python, platform, torch, numpy and the named packages' versions, plus the git commit when known."""
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for name in ("torch", "numpy", "shared", *packages):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).parent)
        if sha.returncode == 0:
            out["git"] = sha.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return out


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def _rng_state() -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    json_state = {"numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
                  "python": [py_version, list(py_state), py_gauss]}
    tensors = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"torch_cuda_{i}"] = state
    return json_state, tensors


def _set_rng_state(json_state: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
    kind, keys, pos, has_gauss, cached = json_state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    py_version, py_state, py_gauss = json_state["python"]
    random.setstate((py_version, tuple(py_state), py_gauss))
    torch.set_rng_state(tensors["torch_cpu"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("torch_cuda_")]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def load_modules(path: str | Path, modules: dict[str, torch.nn.Module], strict: bool = True) -> None:
    """Load ``<module>.<param>`` weights from a safetensors file into ``modules`` (a clear error if corrupt)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint '{path}' does not exist; expected a .safetensors file written by train.py")
    try:
        tensors = load_file(path)
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"checkpoint '{path}' is corrupt or not a safetensors file: {err}") from err
    for key, module in modules.items():
        prefix = f"{key}."
        state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        if not state and strict:
            raise ValueError(f"checkpoint '{path}' holds no weights for module {key!r}; "
                             f"it has {sorted({k.split('.')[0] for k in tensors})}")
        try:
            module.load_state_dict(state, strict=strict)
        except RuntimeError as err:
            raise ValueError(f"checkpoint '{path}' does not match module {key!r} (wrong config?): {err}") from err


class RunDir:
    """One run folder: config, metrics, log, checkpoints and eval results."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._start = time.time()

    # ---- creation -------------------------------------------------------------------------------------
    @classmethod
    def create(cls, out: str | Path = "runs", tag: str = "run") -> RunDir:
        """Make ``<out>/<YYYYmmdd>-<HHMMSS>-<tag>/`` (a numeric suffix keeps it unique)."""
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        base = Path(out) / f"{stamp}-{tag}"
        path, i = base, 1
        while path.exists():
            path, i = Path(f"{base}-{i}"), i + 1
        (path / "checkpoints").mkdir(parents=True)
        return cls(path)

    @classmethod
    def open(cls, path: str | Path) -> RunDir:
        """An existing run folder (for ``--resume`` and ``eval.py``)."""
        run = cls(path)
        if not (run.path / "config.json").is_file():
            raise FileNotFoundError(f"'{run.path}' is not a run folder: expected {run.path / 'config.json'} "
                                    "written by train.py")
        return run

    # ---- files ---------------------------------------------------------------------------------------
    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    def write_json(self, name: str, obj: Any) -> Path:
        """Write ``obj`` as indented JSON to ``<run>/<name>`` (atomically)."""
        target = self.path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(target, lambda p: p.write_text(json.dumps(obj, indent=2, default=_json_default) + "\n"))
        return target

    def read_json(self, name: str) -> Any:
        target = self.path / name
        if not target.is_file():
            raise FileNotFoundError(f"'{target}' does not exist in run folder '{self.path}'")
        try:
            return json.loads(target.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"'{target}' is not valid JSON (corrupt or truncated): {err}") from err

    def write_config(self, cfg, *packages: str, **extra: Any) -> dict[str, Any]:
        """Write the resolved config dataclass (or dict) with versions, argv and time to ``config.json``."""
        config = config_to_dict(cfg) if dataclasses.is_dataclass(cfg) else dict(cfg)
        meta = {"versions": package_versions(*packages), "argv": sys.argv,
                "created": dt.datetime.now().isoformat(timespec="seconds"), **extra}
        self.write_json("config.json", {"config": config, "meta": meta})
        return config

    def read_config(self, config_cls=None):
        """The ``config`` part of ``config.json``, as a dict or (given ``config_cls``) as that dataclass."""
        config = self.read_json("config.json")["config"]
        return apply_overrides(config_cls(), config) if config_cls is not None else config

    # ---- logging -------------------------------------------------------------------------------------
    def log(self, message: str, *, quiet: bool = False) -> None:
        """Print ``message`` (unless quiet) and append it with a timestamp to ``log.txt``."""
        if not quiet:
            print(message, flush=True)
        with open(self.path / "log.txt", "a") as fh:
            fh.write(f"[{dt.datetime.now().isoformat(timespec='seconds')}] {message}\n")

    def log_metrics(self, **row: Any) -> None:
        """Append one JSON object (plus ``time``, seconds since this RunDir was made) to ``metrics.jsonl``."""
        row = {**row, "time": round(time.time() - self._start, 3)}
        with open(self.path / "metrics.jsonl", "a") as fh:
            fh.write(json.dumps(row, default=_json_default) + "\n")

    def read_metrics(self) -> list[dict[str, Any]]:
        target = self.path / "metrics.jsonl"
        if not target.is_file():
            return []
        return [json.loads(line) for line in target.read_text().splitlines() if line.strip()]

    def rewind_metrics(self, step: int, key: str = "step") -> None:
        """Drop rows logged after ``step`` (used on resume so that no row appears twice)."""
        rows = [r for r in self.read_metrics() if r.get(key, -1) <= step]
        _atomic_write(self.path / "metrics.jsonl",
                      lambda p: p.write_text("".join(json.dumps(r) + "\n" for r in rows)))

    # ---- checkpoints ---------------------------------------------------------------------------------
    def save_checkpoint(self, name: str, modules: dict[str, torch.nn.Module], *,
                        optimizers: dict[str, Any] | None = None, state: dict[str, Any] | None = None) -> Path:
        """Save module weights (safetensors), optimizer/scheduler and RNG state, and JSON ``state``.

        Args:
            name: checkpoint name, e.g. ``"last"`` or ``"best"``.
            modules: ``{"model": model, "teacher": teacher, ...}``.
            optimizers: objects with ``state_dict()``/``load_state_dict()`` (optimizers, schedulers, scalers).
            state: JSON-serialisable trainer state (``step``, ``epoch``, best metric...).
        """
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        tensors = {f"{key}.{k}": v.detach().cpu().clone().contiguous()
                   for key, module in modules.items() for k, v in module.state_dict().items()}
        base = self.checkpoints / name
        _atomic_write(base.with_suffix(".safetensors"), lambda p: save_file(tensors, str(p), metadata={"format": "pt"}))
        json_rng, tensor_rng = _rng_state()
        side = {"optimizers": {k: o.state_dict() for k, o in (optimizers or {}).items()}, "rng": tensor_rng}
        _atomic_write(base.with_suffix(".pt"), lambda p: torch.save(side, p))
        _atomic_write(base.with_suffix(".json"), lambda p: p.write_text(
            json.dumps({"state": state or {}, "rng": json_rng}, default=_json_default)))
        return base.with_suffix(".safetensors")

    def load_checkpoint(self, name: str, modules: dict[str, torch.nn.Module], *,
                        optimizers: dict[str, Any] | None = None, restore_rng: bool = True) -> dict[str, Any]:
        """Load what :meth:`save_checkpoint` wrote; return the JSON ``state``.

        Raises:
            FileNotFoundError: the checkpoint does not exist (the message lists those that do).
            ValueError: a file is corrupt or does not match the modules.
        """
        base = self.checkpoints / name
        weights = base.with_suffix(".safetensors")
        if not weights.is_file():
            have = sorted(p.stem for p in self.checkpoints.glob("*.safetensors"))
            raise FileNotFoundError(f"no checkpoint '{weights}'; the run folder has {have or 'none'}")
        load_modules(weights, modules)
        try:
            side = torch.load(base.with_suffix(".pt"), map_location="cpu", weights_only=True)
            meta = json.loads(base.with_suffix(".json").read_text())
        except FileNotFoundError as err:
            raise FileNotFoundError(f"checkpoint '{base}' is incomplete: {err.filename} is missing") from err
        except Exception as err:  # torch raises several unpickling errors on a damaged file
            raise ValueError(f"checkpoint side state '{base}.pt/.json' is corrupt: {err}") from err
        for key, opt in (optimizers or {}).items():
            if key not in side["optimizers"]:
                raise ValueError(f"checkpoint '{base}' has no state for {key!r}; it has {list(side['optimizers'])}")
            opt.load_state_dict(side["optimizers"][key])
        if restore_rng:
            _set_rng_state(meta["rng"], side["rng"])
        return meta["state"]

    def __repr__(self) -> str:
        return f"RunDir('{self.path}')"


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if dataclasses.is_dataclass(obj):
        return dataclasses.asdict(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")
