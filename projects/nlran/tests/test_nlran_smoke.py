"""End to end: train.py --smoke and eval.py into tmp_path, resume, and bad inputs."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]


def _load(name):
    spec = importlib.util.spec_from_file_location(f"nlran_{name}_script", ROOT / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


train, evaluate = _load("train"), _load("eval")
COMMON = ["--smoke", "--device", "cpu", "--quiet"]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    return train.main([*COMMON, "--out", str(out)])


def test_train_and_eval_smoke(smoke_run):
    run = Path(smoke_run["run"])
    for name in ("config.json", "metrics.jsonl", "log.txt", "train_summary.json",
                 "checkpoints/best.safetensors", "checkpoints/last.safetensors", "checkpoints/last.pt"):
        assert (run / name).is_file(), name
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2] and all(r["train_loss"] > 0 for r in rows)
    result = evaluate.main([str(run), "--device", "cpu", "--quiet"])
    saved = json.loads((run / "eval.json").read_text())
    assert saved["test"]["confusion_matrix"] == result["test"]["confusion_matrix"]
    assert sum(map(sum, saved["test"]["confusion_matrix"])) == saved["test"]["n"]
    assert saved["latency"]["median_ms"] > 0
    assert set(saved["localisation"]) == {"attention", "cam", "gradcam"}
    assert 0.0 <= saved["localisation"]["attention"]["voxel_auc"] <= 1.0
    assert (run / "heatmaps.png").stat().st_size > 1000


def test_resume_reaches_the_uninterrupted_result(smoke_run, tmp_path):
    """A run stopped after epoch 1 and resumed ends with the same weights as the 2-epoch run."""
    first = train.main([*COMMON, "--out", str(tmp_path), "epochs=1"])
    run = Path(first["run"])
    config = json.loads((run / "config.json").read_text())
    config["config"]["epochs"] = 2  # the same run, as if it had been killed after its first epoch
    (run / "config.json").write_text(json.dumps(config))
    train.main(["--resume", str(run), "--device", "cpu", "--quiet"])
    a = load_file(Path(smoke_run["run"]) / "checkpoints/last.safetensors")
    b = load_file(run / "checkpoints/last.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5)
    assert [r["epoch"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())] == [1, 2]


def test_corrupt_checkpoint_is_a_clear_error_and_nothing_is_lost(smoke_run):
    run = Path(smoke_run["run"])
    bad = run / "checkpoints" / "broken.safetensors"
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(ValueError, match="corrupt"):
        evaluate.main([str(run), "--checkpoint", "broken", "--device", "cpu", "--quiet"])
    assert (run / "checkpoints" / "best.safetensors").is_file() and (run / "eval.json").is_file()
    with pytest.raises(FileNotFoundError, match="not a run folder"):
        evaluate.main([str(run / "checkpoints"), "--device", "cpu"])


def test_bad_options_fail_clearly(tmp_path, capsys):
    with pytest.raises(SystemExit):
        train.main([*COMMON, "--out", str(tmp_path), "no_such_key=1"])
    assert "unknown config key" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train.main([*COMMON, "--out", str(tmp_path), "arch=vgg"])
    assert "arch" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match="CC-CCII"):
        train.main([*COMMON, "--out", str(tmp_path), "dataset=ccccii", "--data-root", str(tmp_path / "none")])
