"""The project contract (../shared/conventions.md of the specs), checked for every folder under projects/."""

from __future__ import annotations

import json
import re
import tomllib
from collections import Counter
from pathlib import Path

import pytest

from shared.results import result_blocks, sync_readme

ROOT = Path(__file__).resolve().parents[1]
PROJECTS = sorted(p for p in (ROOT / "projects").iterdir() if (p / "pyproject.toml").is_file())
RESULT_KEYS = {"tables", "seeds", "versions", "wall_time_s", "command"}
BENCH_KEYS = {"tables", "threads"}  # benchmarks/*.py output (results/bench*.json): timings, no seeds


def test_top_level_layout():
    for name in ("projects", "shared", "tests", "pyproject.toml", "uv.lock", ".github", "README.md", ".ci/run"):
        assert (ROOT / name).exists(), f"missing top-level {name}"
    workspace = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["uv"]["workspace"]
    assert set(workspace["members"]) == {"shared", "projects/*"}
    assert "pytest" in " ".join(tomllib.loads((ROOT / "shared/pyproject.toml").read_text())["dependency-groups"]["dev"])


def test_there_are_projects():
    assert PROJECTS, "no project under projects/"


@pytest.mark.parametrize("project", PROJECTS, ids=lambda p: p.name)
def test_project_files(project: Path):
    name = project.name
    for rel in ("README.md", "train.py", "eval.py", f"src/{name}/__init__.py", "tests", "results", "configs"):
        assert (project / rel).exists(), f"{name}: missing {rel}"
    configs = [p.name for p in (project / "configs").iterdir()]
    assert any(c.startswith("paper") for c in configs), f"{name}: configs/ needs paper.* (or paper/), has {configs}"
    assert any(c.startswith("cpu.") for c in configs), f"{name}: configs/ needs cpu.*, has {configs}"
    tests = list((project / "tests").glob(f"test_{name}_*.py"))
    assert tests, f"{name}: no tests/test_{name}_*.py"
    stray = [p.name for p in (project / "tests").glob("test_*.py") if not p.name.startswith(f"test_{name}_")]
    assert not stray, f"{name}: test files must be named test_{name}_*.py, found {stray}"


@pytest.mark.parametrize("project", PROJECTS, ids=lambda p: p.name)
def test_project_pyproject(project: Path):
    meta = tomllib.loads((project / "pyproject.toml").read_text())
    assert meta["project"]["name"] == project.name
    assert any(re.match(r"shared\b", d) for d in meta["project"]["dependencies"]), "must depend on shared"
    assert meta["tool"]["uv"]["sources"]["shared"] == {"workspace": True}
    assert any(d.startswith("pytest") for d in meta["dependency-groups"]["dev"]), "dev group needs pytest"
    for dep in meta["project"]["dependencies"]:
        if not re.match(r"(shared|conddiff)$", dep):
            assert re.search(r"[<>=~]", dep), f"{project.name}: pin a tested range for {dep!r}"


@pytest.mark.parametrize("project", PROJECTS, ids=lambda p: p.name)
def test_results_json(project: Path):
    files = sorted((project / "results").glob("*.json"))
    assert files, f"{project.name}: no results/*.json (commit the output of reproduce.py)"
    for path in files:
        data = json.loads(path.read_text())
        assert isinstance(data, dict), f"{path}: must be a JSON object"
        missing = (BENCH_KEYS if path.name.startswith("bench") else RESULT_KEYS) - data.keys()
        assert not missing, f"{path}: missing keys {sorted(missing)}"
        assert data["tables"], f"{path}: 'tables' is empty"


@pytest.mark.parametrize("project", PROJECTS, ids=lambda p: p.name)
def test_readme(project: Path):
    readme = project / "README.md"
    text = readme.read_text()
    for needle in ("uv run train.py", "uv run eval.py", "## Deviations"):
        assert needle in text, f"{project.name}/README.md must contain {needle!r}"
    assert result_blocks(readme), f"{project.name}/README.md has no <!-- results:start ... --> block"
    stale = sync_readme(readme, write=False)
    assert not stale, (f"{project.name}/README.md tables out of sync with results JSON: {stale}; "
                       f"run `uv run python -m shared.results {readme.relative_to(ROOT)}`")


def test_test_file_names_are_unique():
    files = [*ROOT.glob("tests/test_*.py"), *ROOT.glob("shared/tests/test_*.py"),
             *ROOT.glob("projects/*/tests/**/test_*.py")]
    names = Counter(p.name for p in files)
    assert not [n for n, c in names.items() if c > 1], f"duplicate test file names: {names}"


def test_root_readme_lists_every_project():
    text = (ROOT / "README.md").read_text()
    for project in PROJECTS:
        assert f"projects/{project.name}" in text, f"root README does not list projects/{project.name}"


def test_root_readme_tables_in_sync():
    stale = sync_readme(ROOT / "README.md", write=False)
    assert not stale, f"README.md tables out of sync with their JSON: {stale}"
