"""Render README results tables from committed results JSON, and check they are in sync.

A results file (``projects/<name>/results/<experiment>.json``, written by ``reproduce.py``) holds, beside
every raw figure, the seeds, versions and wall time, a ``tables`` mapping::

    {"tables": {"main": {"columns": ["method", "acc"], "rows": [["KD", 0.91], ["RLD", 0.93]],
                         "floatfmt": ".3f"}}, ...}

A README marks where each table goes; the block between the markers is generated::

    <!-- results:start results/teacher_error.json#main -->
    | method | acc |
    ...
    <!-- results:end -->

Regenerate all tables with ``uv run python -m shared.results projects/*/README.md`` and check them with
``--check`` (the root contract test does this for every project).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

BLOCK = re.compile(r"(<!-- results:start (?P<ref>[^ ]+?) -->\n)(?P<body>.*?)(<!-- results:end -->)", re.DOTALL)


def format_cell(value, floatfmt: str = ".3f") -> str:
    """Numbers with ``floatfmt`` (ints as is), ``None`` as an em dash, everything else as text."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if value != value else format(value, floatfmt)
    return str(value).replace("|", "\\|")


def render_table(table: dict) -> str:
    """A Markdown table from ``{"columns": [...], "rows": [[...]], "floatfmt"?: str}``."""
    columns, rows = table.get("columns"), table.get("rows")
    if not columns or rows is None:
        raise ValueError("a results table needs 'columns' (non-empty) and 'rows'")
    fmt = table.get("floatfmt", ".3f")
    lines = ["| " + " | ".join(map(str, columns)) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for row in rows:
        if len(row) != len(columns):
            raise ValueError(f"row {row!r} has {len(row)} cells but the table has {len(columns)} columns")
        lines.append("| " + " | ".join(format_cell(v, fmt) for v in row) + " |")
    return "\n".join(lines) + "\n"


def load_table(readme: Path, ref: str) -> dict:
    """Resolve ``results/<file>.json#<table>`` relative to the README's folder."""
    file, _, name = ref.partition("#")
    path = readme.parent / file
    if not path.is_file():
        raise FileNotFoundError(f"{readme}: results file '{path}' named by a results marker does not exist")
    tables = json.loads(path.read_text()).get("tables", {})
    if name not in tables:
        raise ValueError(f"{readme}: '{path}' has no table {name!r}; it has {sorted(tables)}")
    return tables[name]


def sync_readme(readme: str | Path, write: bool = True) -> list[str]:
    """Regenerate every results block of ``readme``; return the refs whose block was out of date."""
    readme = Path(readme)
    text = readme.read_text()
    stale: list[str] = []

    def replace(match: re.Match) -> str:
        body = render_table(load_table(readme, match["ref"]))
        if body != match["body"]:
            stale.append(match["ref"])
        return match.group(1) + body + match.group(4)

    new = BLOCK.sub(replace, text)
    if write and new != text:
        readme.write_text(new)
    return stale


def result_blocks(readme: str | Path) -> list[str]:
    """The refs of every results block in ``readme``."""
    return [m["ref"] for m in BLOCK.finditer(Path(readme).read_text())]


OUTPUT = re.compile(r"<!-- default-output -->\n```text\n(?P<body>.*?)```\n<!-- /default-output -->", re.DOTALL)
_NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")
_RUN = re.compile(r"\S*runs/\d{8}-\d{6}-[\w.-]+")


def quoted_output(readme: str | Path) -> str:
    """The default-run output a README quotes between ``<!-- default-output -->`` and ``<!-- /default-output -->``."""
    match = OUTPUT.search(Path(readme).read_text())
    if match is None:
        raise ValueError(f"{readme} quotes no default-run output: expected a ```text block between "
                         "<!-- default-output --> and <!-- /default-output -->")
    return match["body"]


def output_shape(text: str) -> list[str]:
    """Lines with run folders written ``runs/<run>``, every number ``#`` and runs of spaces one space (the format,
    not the values: a fixed-width table keeps its shape when a number's width changes)."""
    lines = [" ".join(_NUMBER.sub("#", _RUN.sub("runs/<run>", line.strip())).split()) for line in text.splitlines()]
    return [line for line in lines if line]


def check_default_output(readme: str | Path, output: str) -> None:
    """Assert that every line a README quotes from the default run appears, in order, in ``output`` (format only).

    Project smoke tests call it with the stdout of ``train.py --smoke``: the numbers differ, the lines must not.
    """
    quoted, actual = output_shape(quoted_output(readme)), output_shape(output)
    position = 0
    for line in quoted:
        try:
            position = actual.index(line, position) + 1
        except ValueError:
            raise AssertionError(f"{readme} quotes the line\n  {line}\nwhich the run does not print (in this order); "
                                 "the run printed:\n  " + "\n  ".join(actual)) from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Render README results tables from results/*.json.")
    parser.add_argument("readmes", nargs="+", type=Path)
    parser.add_argument("--check", action="store_true", help="only report stale tables (exit 1 if any)")
    args = parser.parse_args(argv)
    stale_any = False
    for readme in args.readmes:
        stale = sync_readme(readme, write=not args.check)
        for ref in stale:
            print(f"{readme}: {'stale' if args.check else 'updated'} table {ref}")
        stale_any |= bool(stale)
    return 1 if (args.check and stale_any) else 0


if __name__ == "__main__":
    sys.exit(main())
