"""One way to start, resume and evaluate a run: :func:`start` for ``train.py``, :func:`open_run` for ``eval.py``.

The rules (the same in every project; the root README states them once):

* **Config.** The dataclass defaults are the paper's; then the project's default file (``configs/cpu.yaml``) or
  ``--config FILE`` instead of it; then the ``--smoke`` overrides; then ``--seed``/``--device``/``--data-root`` (into
  the fields of those names); then ``key=value`` pairs. Later wins.
* **Resume.** ``--resume RUN`` starts from the config saved in ``RUN/config.json``; this command's ``key=value``
  pairs and explicitly given ``--seed``/``--device``/``--data-root`` are applied on top and recorded in
  ``config.json`` under ``meta.resumes``. ``--config`` and ``--smoke`` cannot be combined with ``--resume``.
  Seeding happens on resume too; the trainer then restores the checkpoint's RNG state.
* **Validation before side effects.** Unknown keys, bad values, an unavailable device, a ``--data-root`` that the
  chosen dataset does not read or that does not exist, and the project's own ``check`` all fail before any folder
  is created, with exit status 2 and a message saying what was expected.
* **Threads.** ``torch.set_num_threads(--threads)``, default :data:`~shared.runs.cli.DEFAULT_THREADS`, recorded.
* **Evaluation.** ``eval.py RUN`` (``--run RUN`` is an alias) reads ``RUN/config.json``, refuses a run whose
  ``status.json`` is not ``finished`` unless ``--allow-partial``, loads ``--checkpoint`` (default ``last``), writes
  only inside ``RUN`` and merges its results into ``RUN/eval.json`` under its own section, with the checkpoint's
  step.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import functools
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from shared.runs.checkpoint import CheckpointInfo
from shared.runs.cli import (
    DEFAULT_THREADS,
    _parse_pairs,
    apply_overrides,
    build_parser,
    config_to_dict,
    load_config_file,
)
from shared.runs.errors import CheckpointError, DivergenceError, UsageError
from shared.runs.folder import RunDir
from shared.runs.setup import seed_everything, select_device

FLAG_FIELDS = ("seed", "device", "data_root")


@dataclass
class Started:
    """What :func:`start` returns to a trainer."""

    cfg: Any
    args: argparse.Namespace
    run: RunDir
    device: torch.device
    resumed: bool

    def log(self, message: str) -> None:
        self.run.log(message, quiet=self.args.quiet)


@dataclass
class Evaluating:
    """What :func:`open_run` returns to an evaluator."""

    cfg: Any
    args: argparse.Namespace
    run: RunDir
    device: torch.device
    checkpoint: CheckpointInfo

    def log(self, message: str) -> None:
        self.run.log(message, quiet=self.args.quiet)

    def load(self, modules: dict[str, torch.nn.Module], strict: bool = True) -> dict[str, Any]:
        """Load the evaluated checkpoint set's weights into ``modules`` (no optimizer, RNG untouched); its state."""
        from shared.runs.checkpoint import load_weights

        load_weights(self.checkpoint.path, modules, strict=strict)
        return json.loads((self.checkpoint.path / "state.json").read_text())["state"]

    def save(self, results: dict[str, Any], section: str = "eval") -> Path:
        """Merge ``results`` (plus the evaluated checkpoint) into ``RUN/eval.json[section]``."""
        return self.run.update_eval(section, {**results, "checkpoint": self.checkpoint.summary(self.run.path)})


def _flags(cfg, args) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(cfg)}
    given = {"seed": args.seed, "device": None if args.device == "auto" else args.device, "data_root": args.data_root}
    return {k: v for k, v in given.items() if k in names and v is not None}


def resolve_config(config_cls, args, *, default_config: Path | None = None, smoke: dict[str, Any] | None = None,
                   saved: dict[str, Any] | None = None):
    """The config of a new run (``saved`` is None) or of a resumed one, by the rules in the module docstring."""
    if saved is not None:
        cfg = apply_overrides(config_cls(), saved)
    else:
        cfg = config_cls()
        file = args.config if args.config is not None else default_config
        if file is not None:
            cfg = apply_overrides(cfg, load_config_file(file))
        if args.smoke and smoke:
            cfg = apply_overrides(cfg, smoke)
    cfg = apply_overrides(cfg, _flags(cfg, args))
    return apply_overrides(cfg, _parse_pairs(args.overrides))


def _check_data_root(cfg, args, uses_data_root: Callable[[Any], bool], hint: str) -> None:
    root = getattr(cfg, "data_root", None) or args.data_root
    if root in (None, ""):
        return
    if not uses_data_root(cfg):
        raise UsageError(f"--data-root {root} is not read by this configuration: the chosen dataset is the embedded "
                         f"offline default. The data root is read only with {hint or 'a real-dataset config'}.")
    if not Path(root).expanduser().exists():
        raise UsageError(f"--data-root '{root}' does not exist; expected the dataset's official layout "
                         "(see the project README)")


def start(config_cls, argv: list[str] | None = None, *, tag: str | Callable[[Any], str],
          default_config: str | Path | None = None, smoke: dict[str, Any] | None = None,
          parser: argparse.ArgumentParser | None = None, description: str = "",
          uses_data_root: Callable[[Any], bool] = lambda cfg: False, data_root_hint: str = "",
          check: Callable[[Any, argparse.Namespace], None] | None = None, packages: tuple[str, ...] = ()) -> Started:
    """Parse, validate, seed and open the run folder of a training run (new or ``--resume``).

    Args:
        config_cls: the project's config dataclass (defaults = the paper's).
        argv: the command line (default ``sys.argv[1:]``).
        tag: run-folder tag, or a function of the config giving it (``lambda c: f"{c.method}-{c.dataset}"``).
        default_config: the file used when ``--config`` is not given (the project's ``configs/cpu.yaml``).
        smoke: overrides for ``--smoke``.
        parser: a parser from :func:`shared.runs.build_parser` with the project's own flags added.
        uses_data_root: whether this config's dataset reads ``data_root`` (default: never).
        data_root_hint: which configs read it, for the error message (``"dataset=cifar100 or imagenet"``).
        check: the project's own validation; raise ``UsageError``/``ValueError``/``FileNotFoundError``.
        packages: distributions whose versions go into ``config.json``.
    """
    parser = parser or build_parser(config_cls, description)
    args = parser.parse_intermixed_args(argv)  # key=value pairs may stand before, between or after the flags
    try:
        run = None
        if args.resume is not None:
            if args.config is not None or args.smoke:
                raise UsageError("--resume continues a run with its saved config; --config and --smoke cannot be "
                                 "combined with it (change fields with key=value)")
            run = RunDir.open(args.resume)
            cfg = resolve_config(config_cls, args, saved=run.read_config())
            changes = {**_parse_pairs(args.overrides), **{k: str(v) for k, v in _flags(cfg, args).items()}}
        else:
            cfg = resolve_config(config_cls, args, default_config=default_config and Path(default_config),
                                 smoke=smoke)
        device = select_device(getattr(cfg, "device", None) or args.device)
        if args.threads < 1:
            raise UsageError(f"--threads must be at least 1, got {args.threads}")
        _check_data_root(cfg, args, uses_data_root, data_root_hint)
        if check is not None:
            check(cfg, args)
    except (UsageError, ValueError, FileNotFoundError) as err:
        parser.error(str(err))
    if args.seed is None:
        args.seed = getattr(cfg, "seed", 0)
    if args.dry_run:
        print(json.dumps(config_to_dict(cfg), indent=2))
        raise SystemExit(0)

    torch.set_num_threads(args.threads)
    seed_everything(getattr(cfg, "seed", args.seed), args.deterministic)
    if run is None:
        run = RunDir.create(args.out, tag(cfg) if callable(tag) else tag)
        run.write_config(cfg, *packages, threads=args.threads, resumes=[])
    else:
        saved = run.read_json("config.json")
        saved["config"] = config_to_dict(cfg)
        saved.setdefault("meta", {}).setdefault("resumes", []).append(
            {"at": dt.datetime.now().isoformat(timespec="seconds"), "overrides": changes, "threads": args.threads})
        run.write_json("config.json", saved)
    run.set_status("running")
    return Started(cfg=cfg, args=args, run=run, device=device, resumed=args.resume is not None)


def build_eval_parser(description: str = "") -> argparse.ArgumentParser:
    """``eval.py RUN [--checkpoint NAME] [--allow-partial] [--device D] [--threads N] [--quiet]``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("run", nargs="?", type=Path, help="the run folder written by train.py")
    parser.add_argument("--run", dest="run_option", type=Path, default=None, help="alias of the positional RUN")
    parser.add_argument("--checkpoint", default="last", help="checkpoint set to evaluate (default: last)")
    parser.add_argument("--allow-partial", action="store_true", help="evaluate a run that has not finished")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"], help="default: auto")
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS, help=f"CPU threads (default {DEFAULT_THREADS})")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def open_run(config_cls, argv: list[str] | None = None, *, parser: argparse.ArgumentParser | None = None,
             description: str = "", checkpoint: str | None = None) -> Evaluating:
    """Open ``RUN`` for evaluation by the rules in the module docstring (exit 2 with a clear message if not)."""
    parser = parser or build_eval_parser(description)
    args = parser.parse_intermixed_args(argv)
    path = args.run if args.run is not None else args.run_option
    try:
        if path is None:
            raise UsageError("which run? give the run folder written by train.py: eval.py runs/<date>-<time>-<tag>")
        if args.run is not None and args.run_option is not None and args.run != args.run_option:
            raise UsageError(f"two different runs given: {args.run} and --run {args.run_option}")
        run = RunDir.open(path)
        status = run.status()
        if status.get("state") != "finished" and not args.allow_partial:
            raise UsageError(f"run '{run.path}' has not finished (status: {status.get('state')}); resume it with "
                             f"train.py --resume {run.path}, or pass --allow-partial to evaluate its last checkpoint")
        cfg = run.read_config(config_cls)
        device = select_device(args.device)
        info = run.checkpoint_info(checkpoint or args.checkpoint)
    except (UsageError, CheckpointError, ValueError, FileNotFoundError) as err:
        parser.error(str(err))
    torch.set_num_threads(args.threads)
    args.run = run.path
    return Evaluating(cfg=cfg, args=args, run=run, device=device, checkpoint=info)


def entrypoint(main: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the run machinery's errors into a clear message and a non-zero exit status.

    ``UsageError``/``CheckpointError`` exit 2, ``DivergenceError`` exits 3; the message goes to stderr. The
    original error stays available as ``SystemExit.__cause__`` (for tests).
    """

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except DivergenceError as err:
            print(f"error: {err}", file=sys.stderr, flush=True)
            raise SystemExit(3) from err
        except (UsageError, CheckpointError) as err:
            print(f"error: {err}", file=sys.stderr, flush=True)
            raise SystemExit(2) from err

    return wrapper
