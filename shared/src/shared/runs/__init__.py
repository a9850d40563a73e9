"""Run machinery shared by every project (the rules are in ``shared/RUNS.md`` and :mod:`shared.runs.start`).

* :func:`start` -- parse, validate (before anything is written), seed, set threads and open the run folder of a
  training run, new or ``--resume``; :func:`open_run` -- the same for ``eval.py RUN``;
  :func:`entrypoint` -- clear messages and exit codes for the errors below;
* :class:`RunDir` -- ``runs/<date>-<time>-<tag>/`` with ``config.json``, ``status.json``, ``metrics.jsonl``,
  ``log.txt``, atomic checkpoint sets ``checkpoints/<name>/`` and a merged ``eval.json``;
* :func:`guard_finite` and :class:`DivergenceError` -- a non-finite loss/gradient/metric/weight stops the run;
* :func:`build_parser` / :func:`parse_args` -- the common flags plus ``key=value`` overrides of a config dataclass;
* :func:`seed_everything`, :func:`select_device`, :func:`progress`.
"""

from shared.runs.checkpoint import CheckpointInfo, non_finite_tensors
from shared.runs.cli import DEFAULT_THREADS, apply_overrides, build_parser, config_to_dict, load_config_file, parse_args
from shared.runs.errors import CheckpointError, CheckpointMissing, DivergenceError, UsageError, guard_finite
from shared.runs.folder import RunDir, load_modules, package_versions
from shared.runs.setup import progress, seed_everything, select_device
from shared.runs.start import Evaluating, Started, build_eval_parser, entrypoint, open_run, start

__all__ = [
    "DEFAULT_THREADS",
    "CheckpointError",
    "CheckpointInfo",
    "CheckpointMissing",
    "DivergenceError",
    "Evaluating",
    "RunDir",
    "Started",
    "UsageError",
    "apply_overrides",
    "build_eval_parser",
    "build_parser",
    "config_to_dict",
    "entrypoint",
    "guard_finite",
    "load_config_file",
    "load_modules",
    "non_finite_tensors",
    "open_run",
    "package_versions",
    "parse_args",
    "progress",
    "seed_everything",
    "select_device",
    "start",
]
