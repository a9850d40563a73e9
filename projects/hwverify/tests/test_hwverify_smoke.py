"""End to end on the run machinery: train --smoke and eval for both verifiers, resume, divergence, bad inputs."""

import json
from pathlib import Path

import numpy as np
import pytest

from hwverify import eval as eval_script
from hwverify import train
from shared.results import check_default_output
from shared.runs import non_finite_tensors

README = Path(__file__).resolve().parents[1] / "README.md"


def _run(tmp_path, *extra):
    return train.main(["--smoke", "--device", "cpu", "--quiet", "--threads", "1", "--out", str(tmp_path), *extra])


def _metrics(run):
    return [{k: v for k, v in json.loads(line).items() if k not in ("time", "epoch_s")}
            for line in (Path(run) / "metrics.jsonl").read_text().splitlines()]


def test_resnet_smoke_train_eval_resume_and_determinism(tmp_path, capsys):
    result = train.main(["--smoke", "--device", "cpu", "--threads", "1", "--out", str(tmp_path / "runs")])
    check_default_output(README, capsys.readouterr().out)  # the README quotes this output's format
    run = Path(result["run"])
    for name in ("config.json", "status.json", "metrics.jsonl", "log.txt", "eval.json",
                 "checkpoints/final/weights.safetensors", "checkpoints/last/weights.safetensors"):
        assert (run / name).is_file(), name
    rows = _metrics(run)
    assert [r["epoch"] for r in rows] == [1, 2] and all(np.isfinite(r["loss"]) for r in rows)
    out = eval_script.main([str(run), "--device", "cpu", "--threads", "1", "--quiet"])
    assert out["test"]["auc"] == pytest.approx(result["test"]["auc"]) and (run / "roc.png").is_file()
    saved = json.loads((run / "eval.json").read_text())
    assert saved["eval"]["test"]["n"] == out["test"]["n"] and saved["train"]["model"] == "resnet"  # merged
    low, high = out["test"]["accuracy_ci95"]
    assert low <= out["test"]["accuracy"] <= high

    # Same seed, same numbers.
    again = _run(tmp_path / "b")
    assert _metrics(again["run"]) == rows

    # Resume: a run stopped after epoch 1 and resumed with max_epochs=2 reaches the uninterrupted result.
    short = Path(_run(tmp_path / "c", "resnet.max_epochs=1")["run"])
    resumed = train.main(["--resume", str(short), "--device", "cpu", "--quiet", "--threads", "1",
                          "resnet.max_epochs=2"])
    assert resumed["test"]["auc"] == pytest.approx(result["test"]["auc"], abs=1e-6)
    assert _metrics(short) == rows


def test_vlm_smoke_train_and_eval(tmp_path):
    result = _run(tmp_path, "--model", "vlm")
    run = Path(result["run"])
    assert (run / "checkpoints" / "base" / "weights.safetensors").is_file()
    assert (run / "checkpoints" / "final" / "weights.safetensors").is_file()
    out = eval_script.main([str(run), "--device", "cpu", "--threads", "1", "--quiet", "--answer-pairs", "6"])
    assert out["test"]["auc"] == pytest.approx(result["test"]["auc"], abs=1e-5)  # rebuilt base + tuned parameters
    assert out["decisions"]["wrong"]["n"] == 6 and len(out["examples"]) > 0


def test_nan_loss_stops_the_run_before_anything_non_finite_is_saved(tmp_path, monkeypatch, capsys):
    calls = {"n": 0}
    real = train.pair_loss

    def nan_on_third(logits, labels):
        calls["n"] += 1
        loss = real(logits, labels)
        return loss * float("nan") if calls["n"] == 3 else loss

    monkeypatch.setattr(train, "pair_loss", nan_on_third)
    with pytest.raises(SystemExit) as exc:
        _run(tmp_path)
    assert exc.value.code == 3
    err = capsys.readouterr().err
    assert "step 3" in err and "loss" in err
    assert non_finite_tensors(tmp_path) == []


def test_eval_writes_only_inside_the_run_folder(tmp_path, monkeypatch):
    run = Path(_run(tmp_path / "runs")["run"])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    def outside():
        return {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if run not in p.parents and p != run}

    before = outside()
    eval_script.main([str(run), "--device", "cpu", "--threads", "1", "--quiet"])
    assert outside() == before


def test_bad_inputs_are_clear_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:  # the offline default does not read --data-root
        _run(tmp_path / "a", "--data-root", str(tmp_path))
    assert exc.value.code == 2 and "data.source=cedar" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()
    with pytest.raises(SystemExit):
        _run(tmp_path / "b", "no_such_key=1")
    assert "no_such_key" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _run(tmp_path / "b", "--model", "cnn")
    with pytest.raises(SystemExit) as exc:
        _run(tmp_path / "b", "data.source=cedar", "--data-root", str(tmp_path / "nope"))
    assert exc.value.code == 2 and "does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit) as exc:
        _run(tmp_path / "b", "data.source=cedar", "--data-root", str(tmp_path / "empty"))
    assert exc.value.code == 2 and "XXXXy_numZ" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()
    with pytest.raises(SystemExit) as exc:
        eval_script.main([str(tmp_path / "missing_run")])
    assert exc.value.code == 2


def test_missing_paligemma_weights_refused_before_a_run_folder(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        _run(tmp_path / "runs", "--model", "vlm", f"vlm.pretrained={tmp_path / 'no_such_model'}")
    assert exc.value.code == 2 and "paligemma-3b-pt-224" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
