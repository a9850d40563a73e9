"""shared.results: README tables rendered from results JSON, and the staleness check."""

import json

import pytest

from shared.results import format_cell, main, render_table, result_blocks, sync_readme


def test_render_table():
    table = {"columns": ["method", "acc", "n"], "rows": [["KD", 0.91234, 5], ["RLD", None, 5]], "floatfmt": ".2f"}
    assert render_table(table) == "| method | acc | n |\n|---|---|---|\n| KD | 0.91 | 5 |\n| RLD | — | 5 |\n"
    assert format_cell(float("nan")) == "nan" and format_cell("a|b") == "a\\|b"
    with pytest.raises(ValueError, match="2 cells"):
        render_table({"columns": ["a", "b", "c"], "rows": [[1, 2]]})


def test_sync_and_check(tmp_path):
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "exp.json").write_text(json.dumps(
        {"tables": {"main": {"columns": ["x"], "rows": [[1.0]]}}}))
    readme = tmp_path / "README.md"
    readme.write_text("# T\n<!-- results:start results/exp.json#main -->\nold\n<!-- results:end -->\ntail\n")
    assert result_blocks(readme) == ["results/exp.json#main"]
    assert main(["--check", str(readme)]) == 1
    assert sync_readme(readme) == ["results/exp.json#main"]
    assert "| 1.000 |" in readme.read_text() and readme.read_text().endswith("tail\n")
    assert main(["--check", str(readme)]) == 0
    readme.write_text(readme.read_text().replace("#main", "#other"))
    with pytest.raises(ValueError, match="no table 'other'"):
        sync_readme(readme, write=False)
