"""Run conventions shared by every project (see ../shared/conventions.md of the repo's specs).

* :func:`seed_everything`, :func:`select_device` -- seeding (python, numpy, torch; optional deterministic
  mode) and ``--device auto|cpu|cuda|mps``;
* :class:`RunDir` -- ``runs/<date>-<time>-<tag>/`` with ``config.json``, ``metrics.jsonl``, ``log.txt``,
  ``checkpoints/*.safetensors`` (+ JSON and ``weights_only`` side state) and ``eval.json``; resume;
* :func:`parse_args` -- the common flags (``--config --data-root --out --device --seed --resume --smoke
  --quiet --dry-run``) plus ``key=value`` overrides of a typed config dataclass;
* :func:`progress` -- a tqdm bar that stays quiet when not on a terminal.
"""

from shared.runs.cli import apply_overrides, config_to_dict, load_config_file, parse_args
from shared.runs.folder import RunDir, load_modules, package_versions
from shared.runs.setup import progress, seed_everything, select_device

__all__ = [
    "RunDir",
    "apply_overrides",
    "config_to_dict",
    "load_config_file",
    "load_modules",
    "package_versions",
    "parse_args",
    "progress",
    "seed_everything",
    "select_device",
]
