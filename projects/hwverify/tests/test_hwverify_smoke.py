"""End to end: train.py --smoke and eval.py for both verifiers, resume, and bad inputs."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HERE))

import eval as eval_script  # noqa: E402
import train  # noqa: E402


def _run(tmp_path, *extra):
    return train.main(["--smoke", "--device", "cpu", "--quiet", "--out", str(tmp_path), *extra])


def test_resnet_smoke_train_eval_and_resume(tmp_path):
    result = _run(tmp_path / "a")
    run = Path(result["run"])
    for name in ("config.json", "metrics.jsonl", "log.txt", "eval.json", "checkpoints/best.safetensors",
                 "checkpoints/last.safetensors", "checkpoints/last.pt"):
        assert (run / name).is_file(), name
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2] and all(np.isfinite(r["loss"]) for r in rows)
    out = eval_script.main([str(run), "--device", "cpu"])
    assert out["test"] == pytest.approx(result["test"]) and (run / "roc.png").is_file()
    assert json.loads((run / "eval.json").read_text())["test"]["n"] == out["test"]["n"]

    # A corrupt checkpoint is a clear error, and the eval.json already written survives.
    good_eval = (run / "eval.json").read_text()
    (run / "checkpoints" / "best.safetensors").write_bytes(b"truncated")
    with pytest.raises(ValueError, match="corrupt"):
        eval_script.main([str(run), "--device", "cpu"])
    assert (run / "eval.json").read_text() == good_eval

    # Resume: a run stopped after epoch 1 and resumed reaches the uninterrupted result.
    short = Path(_run(tmp_path / "b", "resnet.max_epochs=1")["run"])
    config = json.loads((short / "config.json").read_text())
    config["config"]["resnet"]["max_epochs"] = 2
    (short / "config.json").write_text(json.dumps(config))
    resumed = train.main(["--resume", str(short), "--device", "cpu", "--quiet"])
    assert resumed["test"]["auc"] == pytest.approx(result["test"]["auc"], abs=1e-4)
    assert [json.loads(line)["epoch"] for line in (short / "metrics.jsonl").read_text().splitlines()] == [1, 2]


def test_vlm_smoke_train_and_eval(tmp_path):
    result = _run(tmp_path, "--model", "vlm")
    run = Path(result["run"])
    assert (run / "vlm" / "adapter" / "adapter_model.safetensors").is_file()
    assert (run / "vlm" / "base" / "config.json").is_file()
    out = eval_script.main([str(run), "--device", "cpu", "--answer-pairs", "6"])
    assert out["test"]["auc"] == pytest.approx(result["test"]["auc"], abs=1e-5)  # reloaded adapters
    assert out["decisions"]["wrong"]["n"] == 6 and len(out["examples"]) > 0


def test_bad_inputs_are_clear_errors(tmp_path, capsys):
    with pytest.raises(SystemExit):
        train.main(["--smoke", "no_such_key=1", "--out", str(tmp_path)])
    assert "unknown config key" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train.main(["--smoke", "--model", "cnn", "--out", str(tmp_path)])
    with pytest.raises(FileNotFoundError, match="Expected layout"):
        train.main(["--smoke", "--quiet", "data.source=cedar", "--data-root", str(tmp_path / "nope"),
                    "--out", str(tmp_path)])
    with pytest.raises(FileNotFoundError, match="not a run folder"):
        eval_script.main([str(tmp_path / "missing_run")])
