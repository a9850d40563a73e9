"""Typed config dataclasses from the command line: the common flags plus ``key=value`` overrides.

Order of precedence (later wins): the dataclass defaults (the paper's values) -> ``--config FILE``
(YAML or JSON) -> ``smoke`` overrides when ``--smoke`` is given -> the common flags that name a config field
(``--seed``, ``--device``, ``--data-root``) -> ``key=value`` overrides. Nested dataclasses take dotted keys
(``model.width=64``). Values are checked against the field's annotation (int, float, bool, str, Optional,
Literal, tuple/list); an unknown key or a bad value is a :class:`ValueError` naming the valid choices.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any

import yaml

#: Torch's CPU thread count for every run unless ``--threads`` says otherwise: fixed, because results on CPU depend on
#: it (reduction order), so that the same command gives the same numbers on any machine with at least this many cores.
DEFAULT_THREADS = 2


def config_to_dict(cfg) -> dict[str, Any]:
    """A JSON-ready dict of a (possibly nested) config dataclass."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML or JSON config file into a dict (``{}`` for an empty file)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file '{path}' does not exist; expected a .yaml/.yml/.json file")
    try:
        data = yaml.safe_load(path.read_text()) if path.suffix in (".yaml", ".yml") else json.loads(path.read_text())
    except (yaml.YAMLError, json.JSONDecodeError) as err:
        raise ValueError(f"config file '{path}' is not valid {path.suffix.lstrip('.').upper()}: {err}") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"config file '{path}' must hold a mapping of config keys, got {type(data).__name__}")
    return data


def _flatten(mapping: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in mapping.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _field_names(cfg, prefix: str = "") -> list[str]:
    names = []
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            names += _field_names(value, f"{prefix}{f.name}.")
        else:
            names.append(f"{prefix}{f.name}")
    return names


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Convert ``value`` (a string from the command line or a YAML/JSON value) to ``annotation``."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in args:
                return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, key)
            except ValueError as err:
                errors.append(str(err))
        raise ValueError(f"{key}: cannot read {value!r} as {annotation}: {'; '.join(errors)}")
    if origin is typing.Literal:
        choices = args
        if isinstance(value, str) and not any(isinstance(c, str) and c == value for c in choices):
            value = yaml.safe_load(value)
        if value not in choices:
            raise ValueError(f"{key}: {value!r} is not one of {list(choices)}")
        return value
    if origin in (tuple, list):
        if isinstance(value, str):
            value = yaml.safe_load(value) if value.strip() else []
        if not isinstance(value, (list, tuple)):
            value = [value]
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], key) for v in value)
        if origin is tuple and args:
            if len(args) != len(value):
                raise ValueError(f"{key}: expected {len(args)} values, got {len(value)}")
            return tuple(_coerce(v, a, key) for v, a in zip(value, args))
        items = [_coerce(v, args[0], key) for v in value] if args else list(value)
        return tuple(items) if origin is tuple else items
    if origin is dict or annotation is dict:
        if isinstance(value, str):
            value = yaml.safe_load(value)
        if not isinstance(value, dict):
            raise ValueError(f"{key}: expected a mapping, got {value!r}")
        return value
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("false", "0", "no", "off"):
            return False
        raise ValueError(f"{key}: expected a boolean (true/false), got {value!r}")
    if annotation is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError(f"{key}: expected an integer, got {value!r}")
        try:
            return int(float(value)) if isinstance(value, str) and "e" in value.lower() else int(value)
        except (TypeError, ValueError):
            raise ValueError(f"{key}: expected an integer, got {value!r}") from None
    if annotation is float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{key}: expected a number, got {value!r}") from None
    if annotation is str:
        if isinstance(value, (dict, list)):
            raise ValueError(f"{key}: expected a string, got {value!r}")
        return str(value)
    return value


def apply_overrides(cfg, overrides: dict[str, Any]):
    """Return a copy of the dataclass ``cfg`` with (possibly dotted, possibly nested-dict) ``overrides``."""
    flat = _flatten(overrides)
    valid = _field_names(cfg)
    for key in flat:
        if key not in valid:
            raise ValueError(f"unknown config key {key!r}; valid keys: {', '.join(valid)}")
    return _apply(cfg, flat)


def _apply(cfg, flat: dict[str, Any]):
    hints = typing.get_type_hints(type(cfg))
    changes = {}
    for f in dataclasses.fields(cfg):
        current = getattr(cfg, f.name)
        if dataclasses.is_dataclass(current):
            sub = {k[len(f.name) + 1:]: v for k, v in flat.items() if k.startswith(f"{f.name}.")}
            if sub:
                changes[f.name] = _apply(current, sub)
        elif f.name in flat:
            changes[f.name] = _coerce(flat[f.name], hints[f.name], f.name)
    return dataclasses.replace(cfg, **changes)


def _parse_pairs(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"override {pair!r} is not of the form key=value")
        out[key.strip()] = value
    return out


def _describe_fields(cfg, prefix: str = "") -> list[str]:
    lines = []
    hints = typing.get_type_hints(type(cfg))
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            lines += _describe_fields(value, f"{prefix}{f.name}.")
            continue
        kind = getattr(hints[f.name], "__name__", str(hints[f.name]).replace("typing.", ""))
        note = f.metadata.get("help", "")
        lines.append(f"  {prefix}{f.name}={value!r}  ({kind}){'  ' + note if note else ''}")
    return lines


def build_parser(config_cls, description: str = "") -> argparse.ArgumentParser:
    """The common flags of every entry point; ``--help`` also lists every config field with its default."""
    epilog = "config fields (override with key=value; defaults are the paper's unless the README says otherwise):\n"
    epilog += "\n".join(_describe_fields(config_cls()))
    parser = argparse.ArgumentParser(description=description, epilog=epilog,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="override config fields")
    parser.add_argument("--config", type=Path, help="YAML/JSON file of config overrides")
    parser.add_argument("--data-root", type=str, default=None,
                        help="root of the paper's real dataset (official layout)")
    parser.add_argument("--out", type=Path, default=Path("runs"), help="parent folder of run folders (default: runs)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"], help="default: auto")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: the config's)")
    parser.add_argument("--resume", type=Path, default=None, metavar="RUN_DIR",
                        help="continue a run from its last checkpoint")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes and a few steps (seconds); used by tests")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    parser.add_argument("--deterministic", action="store_true", help="ask torch for deterministic kernels")
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS,
                        help=f"CPU threads for torch (default {DEFAULT_THREADS}, fixed so that a run's numbers do not "
                             "depend on the machine's core count)")
    return parser


def parse_args(config_cls, argv: list[str] | None = None, *, parser: argparse.ArgumentParser | None = None,
               description: str = "", smoke: dict[str, Any] | None = None):
    """Parse ``argv`` into ``(config, args)``.

    Args:
        config_cls: the project's config dataclass (its defaults are the paper's).
        argv: the arguments (default ``sys.argv[1:]``).
        parser: a parser from :func:`build_parser` to which the project added its own flags.
        smoke: overrides applied when ``--smoke`` is given.

    The common flags ``--seed``, ``--device`` and ``--data-root`` are copied into config fields of the same
    name (``seed``, ``device``, ``data_root``) when the dataclass has them.
    """
    parser = parser or build_parser(config_cls, description)
    args = parser.parse_intermixed_args(argv)
    try:
        cfg = config_cls()
        if args.config is not None:
            cfg = apply_overrides(cfg, load_config_file(args.config))
        if args.smoke and smoke:
            cfg = apply_overrides(cfg, smoke)
        names = {f.name for f in dataclasses.fields(cfg)}
        flags = {"seed": args.seed, "device": args.device, "data_root": args.data_root}
        cfg = apply_overrides(cfg, {k: v for k, v in flags.items() if k in names and v is not None})
        cfg = apply_overrides(cfg, _parse_pairs(args.overrides))
    except (ValueError, FileNotFoundError) as err:
        parser.error(str(err))
    if args.seed is None:
        args.seed = getattr(cfg, "seed", 0)
    if args.dry_run:
        print(json.dumps(config_to_dict(cfg), indent=2))
        raise SystemExit(0)
    return cfg, args
