"""End to end: train.py --smoke and eval.py through their main(argv), resume, and bad inputs."""

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import eval as eval_script  # noqa: E402
import train as train_script  # noqa: E402

SMOKE = ["--smoke", "--device", "cpu", "--quiet"]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory) -> Path:
    return train_script.main([*SMOKE, "--out", str(tmp_path_factory.mktemp("runs"))])


def test_train_smoke_writes_run_folder(smoke_run):
    config = json.loads((smoke_run / "config.json").read_text())
    assert config["config"]["data"]["image_size"] == 32 and config["config"]["model"]["arch"] == "definet"
    rows = [json.loads(line) for line in (smoke_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    assert all(np.isfinite(r["loss"]) and r["edge"] > 0 for r in rows)
    weights = load_file(smoke_run / "checkpoints" / "best.safetensors")
    assert any(k.startswith("model.backbone.") for k in weights)
    test = json.loads((smoke_run / "test.json").read_text())
    assert set(test["splits"]) == {"test/telea", "test/ns", "test/exemplar", "test/biharmonic"}
    assert all(0 <= s["auc"] <= 1 and 0 <= s["iou"] <= 1 for s in test["splits"].values())


def test_eval_reproduces_train_test_metrics(smoke_run):
    report = eval_script.main([str(smoke_run), "--device", "cpu", "--quiet", "--figures", "2"])
    test = json.loads((smoke_run / "test.json").read_text())
    for name, entry in report["splits"].items():
        assert entry["auc"] == pytest.approx(test["splits"][name]["auc"], abs=1e-6)
        assert (smoke_run / entry["figure"]).is_file()
    assert json.loads((smoke_run / "eval.json").read_text())["splits"].keys() == report["splits"].keys()


def test_eval_on_image_folder(smoke_run, tmp_path):
    (tmp_path / "imgs").mkdir()
    (tmp_path / "masks").mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        cv2.imwrite(str(tmp_path / "imgs" / f"x{i}.png"), rng.integers(0, 255, (45, 37, 3), np.uint8))
        mask = np.zeros((45, 37), np.uint8)
        mask[10:30, 5:20] = 255
        cv2.imwrite(str(tmp_path / "masks" / f"x{i}.png"), mask)
    report = eval_script.main([str(smoke_run), "--images", str(tmp_path / "imgs"), "--masks", str(tmp_path / "masks"),
                               "--device", "cpu", "--quiet"])
    assert report["splits"]["imgs"]["n_images"] == 2 and 0 <= report["splits"]["imgs"]["f1_macro"] <= 1
    pred = cv2.imread(str(smoke_run / "eval-imgs" / "predictions" / "x1.png"), cv2.IMREAD_GRAYSCALE)
    assert pred.shape == (45, 37)  # predictions at the input image's own size
    with pytest.raises(FileNotFoundError, match="no image files"):
        eval_script.main([str(smoke_run), "--images", str(tmp_path / "masks" / ".."), "--device", "cpu"])


def test_resume_matches_uninterrupted(smoke_run, tmp_path):
    first = train_script.main([*SMOKE, "--out", str(tmp_path), "epochs=1"])
    resumed = train_script.main([*SMOKE, "--resume", str(first), "epochs=2"])
    assert resumed == first
    a = load_file(smoke_run / "checkpoints" / "last.safetensors")
    b = load_file(first / "checkpoints" / "last.safetensors")
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-5) for k in a)
    rows = [json.loads(line) for line in (first / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]


def test_bad_inputs(smoke_run, tmp_path):
    with pytest.raises(SystemExit):  # unknown config key -> argparse error naming the valid keys
        train_script.main([*SMOKE, "--out", str(tmp_path), "model.depth=3"])
    with pytest.raises(FileNotFoundError, match="expected layout|Expected layout"):
        train_script.main([*SMOKE, "--out", str(tmp_path), "--data-root", str(tmp_path / "missing")])
    with pytest.raises(FileNotFoundError, match="not a run folder"):
        eval_script.main([str(tmp_path), "--device", "cpu"])
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((smoke_run / "config.json").read_text())
    (broken / "checkpoints").mkdir()
    (broken / "checkpoints" / "best.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="corrupt"):
        eval_script.main([str(broken), "--device", "cpu"])
    assert (smoke_run / "checkpoints" / "best.safetensors").is_file()  # nothing already written was lost
