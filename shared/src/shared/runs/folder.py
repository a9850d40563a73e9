"""The run folder of the project contract.

Layout::

    runs/<YYYYmmdd>-<HHMMSS>-<tag>/
      config.json        {"config": {...resolved dataclass...}, "meta": {versions, argv, threads, created, resumes}}
      status.json        {"state": "running" | "finished", ...}: eval.py refuses an unfinished run
      metrics.jsonl      one JSON object per logged step/epoch (non-finite values stop the run)
      log.txt            the printed log lines
      checkpoints/<name>/    atomic checkpoint sets (see shared.runs.checkpoint)
      eval.json          {"train": {...}, "eval": {...}, ...}: one section per writer, merged, never replaced

Nothing inside a run folder names an absolute path of the folder itself, so a copied run folder resumes and
evaluates on its own files.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

from shared.runs import checkpoint as ckpt
from shared.runs.checkpoint import CheckpointInfo
from shared.runs.cli import apply_overrides, config_to_dict
from shared.runs.errors import DivergenceError


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


def load_modules(path: str | Path, modules: dict[str, torch.nn.Module], strict: bool = True) -> None:
    """Load ``<module>.<param>`` weights from a safetensors file or checkpoint set folder (a clear error if not)."""
    ckpt.load_weights(path, modules, strict=strict)


def _relative_argv(argv: list[str], out: Path) -> list[str]:
    """``argv`` with the run's parent folder written as ``<out>`` (no absolute path of the run in its files)."""
    out_abs = str(out.resolve())
    return [a.replace(out_abs, "<out>") if isinstance(a, str) else a for a in argv]


def _finite_or_none(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite_or_none(v) for v in obj]
    return obj


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
        meta = {"versions": package_versions(*packages), "argv": _relative_argv(sys.argv, self.path.parent),
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
        for key, value in row.items():
            if isinstance(value, (float, np.floating, torch.Tensor)) and not _finite(value):
                where = next((f"{k} {row[k]}" for k in ("step", "epoch", "iteration") if k in row), "this step")
                raise DivergenceError(f"training diverged at {where}: metric {key} = {value}. The run stopped before "
                                      "saving anything non-finite; lower the learning rate or check the inputs.")
        row = {**row, "time": round(time.time() - self._start, 3)}
        with open(self.path / "metrics.jsonl", "a") as fh:
            fh.write(json.dumps(row, default=_json_default) + "\n")

    def read_metrics(self) -> list[dict[str, Any]]:
        """The rows of ``metrics.jsonl``; a torn last line (the run was killed while appending it) is skipped."""
        target = self.path / "metrics.jsonl"
        if not target.is_file():
            return []
        text = target.read_text()
        lines = [line for line in text.splitlines() if line.strip()]
        rows = []
        for i, line in enumerate(lines):
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                if i == len(lines) - 1 and not text.endswith("\n"):
                    break
                raise ValueError(f"'{target}' line {i + 1} is not valid JSON: {err}") from err
        return rows

    def rewind_metrics(self, step: int, key: str = "step") -> None:
        """Drop rows logged after ``step`` (used on resume so that no row appears twice)."""
        rows = [r for r in self.read_metrics() if r.get(key, -1) <= step]
        _atomic_write(self.path / "metrics.jsonl",
                      lambda p: p.write_text("".join(json.dumps(r) + "\n" for r in rows)))

    # ---- checkpoints ---------------------------------------------------------------------------------
    def save_checkpoint(self, name: str, modules: dict[str, torch.nn.Module], *,
                        optimizers: dict[str, Any] | None = None, state: dict[str, Any] | None = None,
                        writers: dict[str, Any] | None = None) -> Path:
        """Save an atomic checkpoint set ``checkpoints/<name>/`` (weights, optimizer and RNG state, JSON state).

        Args:
            name: checkpoint name, e.g. ``"last"`` or ``"best"``.
            modules: ``{"model": model, "teacher": teacher, ...}``.
            optimizers: objects with ``state_dict()``/``load_state_dict()`` (optimizers, schedulers, scalers).
            state: JSON-serialisable trainer state (``step``, ``epoch``, best metric...).
            writers: ``{"unet": lambda d: unet.save_pretrained(d)}`` for Hugging Face folders inside the set.

        Raises:
            DivergenceError: a weight or optimizer tensor is non-finite (the previous set is kept).
        """
        return ckpt.save_set(self.checkpoints, name, modules, optimizers=optimizers, state=state, writers=writers)

    def checkpoint_info(self, name: str = "last") -> CheckpointInfo:
        """The newest complete set ``name`` (falling back to ``name.prev`` when the newest is torn)."""
        info, problem = ckpt.find_set(self.checkpoints, name)
        if problem is not None:
            self.log(f"warning: checkpoint {name!r} is torn or missing ({problem}); "
                     f"using the previous complete set (step {info.step})")
        return info

    def load_checkpoint(self, name: str, modules: dict[str, torch.nn.Module], *,
                        optimizers: dict[str, Any] | None = None, restore_rng: bool = True) -> dict[str, Any]:
        """Load the newest complete set ``name`` (verified against its manifest); return its JSON ``state``.

        Raises:
            CheckpointError: no complete set (the message names the file that does not match), or the set does
                not fit the modules. ``CheckpointMissing`` (also a ``FileNotFoundError``) when none exists.
        """
        return ckpt.load_set(self.checkpoint_info(name), modules, optimizers=optimizers, restore_rng=restore_rng)

    def has_checkpoint(self, name: str) -> bool:
        """Whether a set ``name`` was ever committed (``name/`` or ``name.prev/`` exists), complete or not.

        Resume code asks this, then loads: a set that exists but is torn beyond its fallback makes the load fail
        with a clear error instead of a silent restart from scratch.
        """
        return (self.checkpoints / name).is_dir() or (self.checkpoints / f"{name}.prev").is_dir()

    # ---- status and eval.json ----------------------------------------------------------------------------
    def set_status(self, state: str, **fields: Any) -> None:
        """Write ``status.json`` (``running`` while training, ``finished`` at the end)."""
        self.write_json("status.json", {"state": state, "updated": dt.datetime.now().isoformat(timespec="seconds"),
                                        **fields})

    def status(self) -> dict[str, Any]:
        """``status.json`` (``{"state": "unknown"}`` for a folder written before it existed)."""
        path = self.path / "status.json"
        return json.loads(path.read_text()) if path.is_file() else {"state": "unknown"}

    def update_eval(self, section: str, results: dict[str, Any]) -> Path:
        """Merge ``results`` into ``eval.json`` under ``section``; other sections are kept (NaN is stored as null)."""
        path = self.path / "eval.json"
        current = self.read_json("eval.json") if path.is_file() else {}
        if not isinstance(current, dict):
            raise ValueError(f"'{path}' does not hold a JSON object; move it away and evaluate again")
        current[section] = _finite_or_none(json.loads(json.dumps(results, default=_json_default)))
        return self.write_json("eval.json", current)

    def finish(self, summary: dict[str, Any]) -> None:
        """End a training run: its headline into ``eval.json["train"]`` and ``status.json`` = finished."""
        self.update_eval("train", summary)
        self.set_status("finished")

    def __repr__(self) -> str:
        return f"RunDir('{self.path}')"


def _finite(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return bool(torch.isfinite(value).all())
    return math.isfinite(float(value))


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
