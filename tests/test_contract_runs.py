"""Issue 18's contract: every project starts, resumes and evaluates through shared.runs, with importable entry
points, and every README opens with its command and its quoted default-run output."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from shared.results import quoted_output

ROOT = Path(__file__).resolve().parents[1]
PROJECTS = sorted(p for p in (ROOT / "projects").iterdir() if (p / "pyproject.toml").is_file())
HACKS = re.compile(r"sys\.path\.(insert|append)|spec_from_file_location|importlib\.util"
                   r"|__file__\)?\.resolve\(\)\.parents\[[3-9]\]")


def _python_files(*folders: Path):
    for folder in folders:
        yield from (p for p in folder.rglob("*.py") if "runs" not in p.parts and ".venv" not in p.parts)


@pytest.mark.parametrize("project", PROJECTS, ids=lambda p: p.name)
@pytest.mark.parametrize("script", ["train", "eval"])
def test_root_scripts_are_shims(project: Path, script: str):
    """``train.py``/``eval.py`` only import ``<name>.<script>.main`` and call it under ``__main__``."""
    tree = ast.parse((project / f"{script}.py").read_text())
    body = [node for node in tree.body if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))]
    imports = [n for n in body if isinstance(n, ast.ImportFrom)]
    assert [(n.module, [a.name for a in n.names]) for n in imports] == [(f"{project.name}.{script}", ["main"])], (
        f"{project.name}/{script}.py must be a shim: `from {project.name}.{script} import main`")
    assert len(body) == 2 and isinstance(body[1], ast.If), f"{project.name}/{script}.py: only the import and __main__"
    module = project / "src" / project.name / f"{script}.py"
    assert module.is_file(), f"{project.name}: the body of {script}.py belongs in src/{project.name}/{script}.py"


@pytest.mark.parametrize("project", PROJECTS, ids=lambda p: p.name)
def test_entry_points_use_shared_runs(project: Path):
    src = project / "src" / project.name
    train, evaluate = (src / "train.py").read_text(), (src / "eval.py").read_text()
    assert re.search(r"\bstart\(", train) and "@entrypoint" in train, (
        f"{project.name}: train must use shared.runs.start")
    assert re.search(r"\bopen_run\(", evaluate) and "@entrypoint" in evaluate, (
        f"{project.name}: eval must use shared.runs.open_run")
    for text, where in ((train, "train"), (evaluate, "eval")):
        assert "seed_everything(" not in text and "RunDir.create(" not in text, (
            f"{project.name}/{where}: seeding and run folders come from shared.runs.start")


def test_no_import_hacks():
    offenders = [f"{p.relative_to(ROOT)}:{i + 1}" for p in _python_files(ROOT / "projects", ROOT / "tests",
                                                                          ROOT / "shared", )
                 if p != Path(__file__).resolve()
                 for i, line in enumerate(p.read_text().splitlines()) if HACKS.search(line)]
    assert not offenders, f"import hacks (sys.path/importlib/reaching into other folders): {offenders}"


@pytest.mark.parametrize("project", PROJECTS, ids=lambda p: p.name)
def test_readme_first_screen(project: Path):
    """The first 40 lines hold the command and the quoted default-run output (issue 27)."""
    text = (project / "README.md").read_text()
    head = "\n".join(text.splitlines()[:40])
    assert "uv run train.py" in head, f"{project.name}/README.md: the command must be in the first 40 lines"
    assert "<!-- default-output -->" in head, f"{project.name}/README.md: quote the default run in the first 40 lines"
    assert quoted_output(project / "README.md").strip()
    assert "<!-- results:start" in text
