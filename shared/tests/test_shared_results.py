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


def test_default_output_format_check(tmp_path):
    from shared.results import check_default_output, output_shape

    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- default-output -->\n```text\nrun folder: runs/20261127-175128-rld-digits\n"
                      "rld student: last-epoch test accuracy 0.9454 (best 0.9543 at epoch 93)\n```\n"
                      "<!-- /default-output -->\n")
    printed = ("progress...\nrun folder: /tmp/x/runs/20261206-101010-rld-digits\n"
               "rld student: last-epoch test accuracy 0.5 (best 0.61 at epoch 3)\n")
    check_default_output(readme, printed)
    assert output_shape("acc 0.95 at epoch 93") == ["acc # at epoch #"]
    with pytest.raises(AssertionError, match="does not print"):
        check_default_output(readme, printed.replace("test accuracy", "accuracy"))
    readme.write_text("no quoted output")
    with pytest.raises(ValueError, match="quotes no default-run output"):
        check_default_output(readme, printed)


def test_default_output_ignores_column_widths():
    from shared.results import output_shape

    assert output_shape("| SFD   | 185.6 |") == output_shape("| SFD | 1185.63 |")
