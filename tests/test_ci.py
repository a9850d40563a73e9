"""The CI workflow is valid against GitHub's schema and runs what the README says."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github/workflows/ci.yml"


def readme_test_command() -> str:
    """The command in the README's block marked ``<!-- test-command -->``."""
    text = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- test-command -->\s*```(?:bash|sh)?\n(.+?)\n```", text)
    assert match, "README.md must mark its test command with <!-- test-command --> followed by a code block"
    return match.group(1).strip()


def test_workflow_matches_github_schema():
    exe = shutil.which("check-jsonschema") or str(Path(sys.executable).parent / "check-jsonschema")
    result = subprocess.run([exe, "--builtin-schema", "vendor.github-workflows", str(WORKFLOW)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ci_runs_the_readme_test_command():
    command = readme_test_command()
    assert command.startswith("uv run")
    ci_lines = [line.strip() for line in (ROOT / ".ci/run").read_text().splitlines()]
    assert command in ci_lines, f".ci/run must run the README's test command {command!r}"
    steps = [s.get("run", "") for job in yaml.safe_load(WORKFLOW.read_text())["jobs"].values() for s in job["steps"]]
    assert command in steps, f"a workflow job must run the README's test command {command!r}"
    assert "uv lock --check" in steps


def test_matrix_lists_every_project():
    projects = sorted(p.name for p in (ROOT / "projects").iterdir() if (p / "pyproject.toml").is_file())
    matrix = yaml.safe_load(WORKFLOW.read_text())["jobs"]["project"]["strategy"]["matrix"]["project"]
    assert sorted(matrix) == projects


def test_readme_has_the_train_command():
    text = (ROOT / "README.md").read_text()
    assert re.search(r"cd projects/\w+ && uv run train\.py", text)


def test_lint_runs_in_ci():
    command = "uv run --locked --all-packages ruff check ."
    assert command in [line.strip() for line in (ROOT / ".ci/run").read_text().splitlines()]
    steps = [s.get("run", "") for job in yaml.safe_load(WORKFLOW.read_text())["jobs"].values() for s in job["steps"]]
    assert command in steps
    assert "ruff" in tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]
