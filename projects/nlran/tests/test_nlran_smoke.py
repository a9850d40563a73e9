"""End to end: train --smoke and eval into tmp_path, resume, divergence, bad inputs, determinism (issue 18)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from nlran import eval as evaluate
from nlran import train
from shared.results import check_default_output
from shared.runs import non_finite_tensors

PROJECT = Path(__file__).resolve().parents[1]
COMMON = ["--smoke", "--device", "cpu", "--threads", "1"]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    return train.main([*COMMON, "--quiet", "--out", str(out)])


def _metrics(run: Path) -> list[dict]:
    """metrics.jsonl without its wall-clock fields (``time``, ``train_seconds``)."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in ("time", "train_seconds")} for r in rows]


def test_train_and_eval_smoke(smoke_run):
    run = Path(smoke_run["run"])
    for name in ("config.json", "metrics.jsonl", "log.txt", "status.json", "eval.json",
                 "checkpoints/best/weights.safetensors", "checkpoints/last/weights.safetensors"):
        assert (run / name).is_file(), name
    assert [r["epoch"] for r in _metrics(run)] == [1, 2, 3] and all(r["train_loss"] > 0 for r in _metrics(run))
    assert json.loads((run / "config.json").read_text())["meta"]["threads"] == 1
    result = evaluate.main([str(run), "--device", "cpu", "--threads", "1", "--quiet"])
    saved = json.loads((run / "eval.json").read_text())
    assert "train" in saved and saved["eval"]["checkpoint"]["name"] == "best"  # train's section is kept
    ev = saved["eval"]
    assert ev["test"]["confusion_matrix"] == result["test"]["confusion_matrix"]
    assert sum(map(sum, ev["test"]["confusion_matrix"])) == ev["test"]["n"] == len(ev["test_probs"])
    assert ev["latency"]["median_ms"] > 0 and ev["gmac_per_volume"] > 0
    assert set(ev["localisation"]) == {"attention", "cam", "gradcam", "ct_intensity"}
    for scores in ev["localisation"].values():
        assert 0.0 <= scores["voxel_auc"] <= 1.0 and 0.0 < scores["pointing_chance"] < 1.0
    assert (run / "heatmaps.png").stat().st_size > 1000


def test_default_output_format_matches_the_readme(tmp_path, capsys):
    train.main([*COMMON, "--out", str(tmp_path / "runs")])
    check_default_output(PROJECT / "README.md", capsys.readouterr().out)


def test_resume_reaches_the_uninterrupted_result(smoke_run, tmp_path):
    """A run stopped after epoch 2 and resumed with epochs=3 ends with the weights of the 3-epoch run."""
    first = train.main([*COMMON, "--quiet", "--out", str(tmp_path), "epochs=2"])
    run = Path(first["run"])
    train.main(["--resume", str(run), "--device", "cpu", "--threads", "1", "--quiet", "epochs=3"])
    a = load_file(Path(smoke_run["run"]) / "checkpoints/last/weights.safetensors")
    b = load_file(run / "checkpoints/last/weights.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5)
    assert [r["epoch"] for r in _metrics(run)] == [1, 2, 3]


def test_same_seed_gives_identical_metrics(smoke_run, tmp_path):
    again = train.main([*COMMON, "--quiet", "--out", str(tmp_path)])
    assert _metrics(Path(again["run"])) == _metrics(Path(smoke_run["run"]))


def test_nan_loss_stops_the_run_before_saving(tmp_path, monkeypatch, capsys):
    real = train.classification_loss

    def nan_after_first_checkpoint(logits, labels):  # the first step after the epoch-1 checkpoint set was written
        loss = real(logits, labels)
        return loss * float("nan") if any(tmp_path.rglob("manifest.json")) else loss

    monkeypatch.setattr(train, "classification_loss", nan_after_first_checkpoint)
    with pytest.raises(SystemExit) as exit_info:
        train.main([*COMMON, "--quiet", "--out", str(tmp_path)])
    assert exit_info.value.code == 3
    err = capsys.readouterr().err
    assert "diverged at step 1 of epoch 2" in err and "loss" in err
    assert non_finite_tensors(tmp_path) == []  # the epoch-1 sets exist and are finite


def test_unused_data_root_is_refused_before_any_folder(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train.main([*COMMON, "--out", str(tmp_path / "runs"), "--data-root", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "dataset=ccccii" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_eval_writes_only_inside_the_run_folder(smoke_run, tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    run = Path(smoke_run["run"]).resolve()
    outside = lambda: {p: p.stat().st_mtime_ns for p in run.parent.parent.rglob("*")  # noqa: E731
                       if run not in p.parents and p != run}
    before = outside()
    evaluate.main([str(run), "--device", "cpu", "--threads", "1", "--quiet"])
    assert outside() == before and not any(elsewhere.iterdir())


def test_bad_options_fail_clearly(smoke_run, tmp_path, capsys):
    with pytest.raises(SystemExit):
        train.main([*COMMON, "--out", str(tmp_path), "no_such_key=1"])
    assert "unknown config key" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train.main([*COMMON, "--out", str(tmp_path), "arch=vgg"])
    assert "arch" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        train.main([*COMMON, "--out", str(tmp_path / "r"), "dataset=ccccii", "--data-root", str(tmp_path)])
    assert exit_info.value.code == 2 and "CC-CCII" in capsys.readouterr().err and not (tmp_path / "r").exists()
    run = Path(smoke_run["run"])
    with pytest.raises(SystemExit) as exit_info:
        evaluate.main([str(run), "--checkpoint", "nosuch", "--device", "cpu"])
    assert exit_info.value.code == 2


def test_reproduce_smoke_writes_tables_with_intervals(tmp_path):
    from nlran import reproduce

    out = reproduce.main(["--smoke", "--quiet", "--seeds", "0", "1", "--archs", "nlran", "resnet3d", "--n-boot", "50",
                          "--runs", str(tmp_path / "runs"), "--results", str(tmp_path / "results")])
    saved = json.loads((tmp_path / "results" / "smoke.json").read_text())
    assert saved["threads"] == 1 and saved["seeds"] == [0, 1]
    rows = {r[0]: r for r in saved["tables"]["classification"]["rows"]}
    assert set(rows) == {"NL-RAN", "3D ResNet"}
    boot = out["bootstrap"]["auc"]
    for name in ("nlran", "resnet3d"):
        finite = np.isfinite([boot[name]["ci_low"], boot[name]["ci_high"]])
        assert not finite.all() or boot[name]["ci_low"] <= boot[name]["ci_high"]
    assert rows["3D ResNet"][3] > 0  # step-time ratio
    heat_rows = saved["tables"]["localisation"]["rows"]
    assert any(r[1].startswith("attention") for r in heat_rows) and heat_rows[-1][0] == "— (reference)"
