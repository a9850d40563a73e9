"""End to end: train.py --smoke and eval.py into tmp_path, reload what they wrote, resume, and bad input."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

from shared.runs import RunDir, load_modules
from sjedd.config import Config
from sjedd.training import build_model

PROJECT = Path(__file__).resolve().parents[1]


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(f"sjedd_script_{name}", PROJECT / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


train = load_script("train")
evaluate = load_script("eval")
SMOKE = ["--smoke", "--quiet", "--device", "cpu"]


def test_train_eval_reload_and_lambda_moves(tmp_path):
    run_path = train.main([*SMOKE, "--out", str(tmp_path), "epochs=2"])
    run = RunDir.open(run_path)
    for name in ("config.json", "metrics.jsonl", "log.txt", "eval.json", "checkpoints/last.safetensors"):
        assert (run_path / name).is_file(), name
    rows = run.read_metrics()
    assert rows[-1]["lambda1"] != 1.0  # the bi-level update moved the task weights
    assert {"L1", "L2", "L3", "loss"} <= rows[0].keys()
    trained = run.read_json("eval.json")
    assert 0.0 <= trained["splits"]["test"]["frame_auc"] <= 1.0

    results = evaluate.main([str(run_path), "--device", "cpu"])
    assert results["splits"]["test"]["frame_auc"] == pytest.approx(trained["splits"]["test"]["frame_auc"])
    assert (run_path / "explanations.png").stat().st_size > 0
    header = (run_path / "predictions.csv").read_text().splitlines()[0]
    assert header.startswith("split,index,class,video,fake,expression")

    model = build_model(run.read_config(Config))
    load_modules(run_path / "checkpoints/last.safetensors", {"model": model})


def test_resume_reaches_the_uninterrupted_result(tmp_path):
    full = RunDir.open(train.main([*SMOKE, "--out", str(tmp_path / "a"), "epochs=2", "aug=false"]))
    part = train.main([*SMOKE, "--out", str(tmp_path / "b"), "epochs=1", "aug=false"])
    resumed = RunDir.open(train.main([*SMOKE, "--resume", str(part), "epochs=2"]))
    a = full.read_json("eval.json")["splits"]["test"]["frame_auc"]
    b = resumed.read_json("eval.json")["splits"]["test"]["frame_auc"]
    assert a == pytest.approx(b, abs=1e-6)
    assert [r["step"] for r in resumed.read_metrics()] == [r["step"] for r in full.read_metrics()]


def test_binary_baseline_smoke(tmp_path):
    run_path = train.main([*SMOKE, "--out", str(tmp_path), "method=binary"])
    results = json.loads((run_path / "eval.json").read_text())
    assert results["method"] == "binary" and "node_accuracy_fakes" not in results["splits"]["test"]


def test_bad_input(tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match="Expected layout"):
        train.main([*SMOKE, "--out", str(tmp_path), "--data-root", str(tmp_path / "missing")])
    with pytest.raises(SystemExit):
        train.main([*SMOKE, "method=heads"])
    assert "not one of" in capsys.readouterr().err
    run_path = train.main([*SMOKE, "--out", str(tmp_path), "epochs=1"])
    weights = run_path / "checkpoints/last.safetensors"
    weights.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="corrupt"):
        evaluate.main([str(run_path), "--device", "cpu"])
    assert (run_path / "eval.json").is_file()  # what train wrote is still there
    with pytest.raises(ValueError, match="list-file|expected"):
        from sjedd.data import ListFileDataset
        (tmp_path / "lists").mkdir()
        (tmp_path / "lists" / "train.txt").write_text("a.png deepfake\n")
        ListFileDataset(tmp_path / "lists", "train")


def test_list_file_loader_reads_images_and_frame_folders(tmp_path):
    import cv2
    import numpy as np

    from sjedd.data import ListFileDataset

    root = tmp_path / "ffpp"
    (root / "vid").mkdir(parents=True)
    for i in range(5):
        cv2.imwrite(str(root / "vid" / f"{i:03d}.png"), np.full((20, 20, 3), 40 * i, np.uint8))
    cv2.imwrite(str(root / "img.png"), np.zeros((20, 20, 3), np.uint8))
    (root / "train.txt").write_text("vid expr_mouth\nimg.png real\n")
    data = ListFileDataset(root, "train", n_frames=3, size=16).load()
    assert data.images.shape == (4, 3, 16, 16) and data.videos.tolist() == [0, 0, 0, 1]
    assert data.labels[0].tolist() == [1, 1, 0, 1, 0, 0, 1, 1, 0, 0]
    assert torch.allclose(data.images[1], torch.full((3, 16, 16), 80 / 255))  # frames 0, 2, 4 of 5
