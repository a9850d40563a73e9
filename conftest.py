"""Repo-wide pytest setup.

1. pytest's ``--import-mode=importlib`` names ``shared/tests/test_x.py`` as the module ``shared.tests.test_x`` and,
   if the real ``shared`` package has not been imported yet, registers the *folder* ``shared/`` as the module
   ``shared``, shadowing the installed package (``No module named 'shared.data'``). Importing the package first
   avoids that.
2. Every project has top-level scripts with the same names (``train.py``, ``eval.py``, ``reproduce.py``, ...) that
   its tests import after putting the project folder on ``sys.path``. In one pytest process the first project's
   ``train`` would otherwise stay in ``sys.modules`` for every other project. So each project's script modules are
   kept apart: they are cleared before a project's test module is collected, remembered after, and put back in
   ``sys.modules`` around each of that project's tests (for scripts that import each other lazily).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no test may reach the model hub
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import shared  # noqa: E402,F401  (see 1. above)

ROOT = Path(__file__).resolve().parent
SCRIPT_NAMES = sorted({p.stem for p in ROOT.glob("projects/*/*.py")})
_scripts: dict[Path, dict[str, ModuleType]] = {}


def _project_of(path) -> Path | None:
    try:
        parts = Path(path).resolve().relative_to(ROOT).parts
    except ValueError:
        return None
    return ROOT / "projects" / parts[1] if len(parts) > 2 and parts[0] == "projects" else None


def _activate(project: Path | None) -> None:
    for name in SCRIPT_NAMES:
        sys.modules.pop(name, None)
    sys.modules.update(_scripts.get(project, {}))
    if project is not None:  # the project's own folder first, for scripts imported lazily by name
        folder = str(project)
        if folder in sys.path:
            sys.path.remove(folder)
        sys.path.insert(0, folder)


def pytest_collectstart(collector):
    if isinstance(collector, pytest.Module):
        _activate(_project_of(collector.path))


def pytest_collectreport(report):
    file = report.nodeid.split("::")[0]
    project = _project_of(ROOT / file) if file.endswith(".py") else None
    if project is not None:
        loaded = {name: sys.modules[name] for name in SCRIPT_NAMES if name in sys.modules}
        _scripts.setdefault(project, {}).update(loaded)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    _activate(_project_of(item.path))
