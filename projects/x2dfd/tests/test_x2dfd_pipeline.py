"""End to end: train.py --smoke and eval.py through main(argv), resume, bad inputs, AUC aggregation."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HERE))

import eval as x2_eval  # noqa: E402
import train as x2_train  # noqa: E402
from shared.metrics import roc_auc  # noqa: E402
from x2dfd.data import DeepfakeBenchRoot  # noqa: E402
from x2dfd.pipeline import video_scores  # noqa: E402

SMOKE = ["--smoke", "--device", "cpu", "--quiet"]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    return x2_train.main([*SMOKE, "--out", str(out)]), out


def test_train_smoke_writes_run(smoke_run):
    result, _ = smoke_run
    run = Path(result["run"])
    for name in ("config.json", "metrics.jsonl", "log.txt", "mfa.json", "sft_items.json", "eval.json",
                 "checkpoints/last.safetensors", "checkpoints/expert.safetensors"):
        assert (run / name).is_file(), name
    ev = json.loads((run / "eval.json").read_text())
    assert set(ev["metrics"]) == {"in_domain", "unseen_manip", "unseen_family"}
    for m in ev["metrics"].values():
        assert 0 <= m["frame_auc"] <= 1 and 0 <= m["video_auc"] <= 1
    items = json.loads((run / "sft_items.json").read_text())
    assert [it["id"] for it in items] == [str(i) for i in range(1, len(items) + 1)]
    human = items[0]["conversations"][0]["value"]
    assert human.startswith("<image>\nIs this image real or fake? And the blending score is ")
    assert items[0]["conversations"][1]["value"].startswith("This image is ")
    mfa = json.loads((run / "mfa.json").read_text())
    assert len(mfa["top_k"]) == 3 and mfa["balanced_accuracy"] == sorted(mfa["balanced_accuracy"], reverse=True)


def test_eval_reloads_run(smoke_run):
    result, _ = smoke_run
    metrics = x2_eval.main(["--run", result["run"], "--device", "cpu"])
    run = Path(result["run"])
    assert (run / "eval.png").is_file() and (run / "explanations.json").is_file()
    # the reloaded model gives the training run's numbers
    for name, m in metrics.items():
        assert abs(m["frame_auc"] - result["metrics"][name]["frame_auc"]) < 1e-6


def test_resume_reaches_same_result(smoke_run, tmp_path):
    result, _ = smoke_run
    # a fresh 2-epoch run, and the same run killed after epoch 1 then resumed
    full = x2_train.main([*SMOKE, "--out", str(tmp_path / "a"), "lora.epochs=2", "use_sfs=false"])
    part = x2_train.main([*SMOKE, "--out", str(tmp_path / "b"), "lora.epochs=2", "use_sfs=false",
                          "--stop-after-epoch", "1"])
    resumed = x2_train.main([*SMOKE, "--resume", part["run"]])
    for name in full["metrics"]:
        assert abs(full["metrics"][name]["frame_auc"] - resumed["metrics"][name]["frame_auc"]) < 1e-6


def test_video_scores_mean_of_frames():
    scores = np.array([0.1, 0.3, 0.9, 0.7, 0.2])
    labels = np.array([0, 0, 1, 1, 0])
    videos = np.array([5, 5, 7, 7, 9])
    v, y = video_scores(scores, labels, videos)
    assert np.allclose(v, [0.2, 0.8, 0.2]) and y.tolist() == [0, 1, 0]
    assert roc_auc(y, v) == 1.0


def test_bad_inputs(tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match="FaceForensics"):
        DeepfakeBenchRoot(tmp_path / "missing", "FaceForensics++")
    with pytest.raises(ValueError, match="unknown dataset"):
        DeepfakeBenchRoot(tmp_path, "NoSuchSet")
    with pytest.raises(FileNotFoundError, match="data root"):
        x2_train.main([*SMOKE, "--out", str(tmp_path), "data.dataset=deepfakebench",
                       "--data-root", str(tmp_path / "nope")])
    with pytest.raises(SystemExit):
        x2_train.main([*SMOKE, "--out", str(tmp_path), "no_such_option=1"])
    assert "no_such_option" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match="not a run folder"):
        x2_eval.main(["--run", str(tmp_path / "empty")])


def test_corrupt_checkpoint_is_reported(smoke_run, tmp_path):
    result, _ = smoke_run
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(result["run"], copy)
    ckpt = copy / "checkpoints" / "last.safetensors"
    ckpt.write_bytes(ckpt.read_bytes()[:100])
    with pytest.raises(Exception, match="(?i)safetensors|checkpoint|header|corrupt|invalid"):
        x2_eval.main(["--run", str(copy), "--device", "cpu"])
    assert (Path(result["run"]) / "checkpoints" / "last.safetensors").stat().st_size > 100  # original intact


def test_deepfakebench_loader_reads_layout(tmp_path):
    import cv2

    base = tmp_path / "UADFV"
    for label, n_videos in (("real", 2), ("fake", 3)):
        for v in range(n_videos):
            d = base / label / "frames" / f"{v:04d}"
            d.mkdir(parents=True)
            for f in range(5):
                cv2.imwrite(str(d / f"{f:03d}.png"), np.full((20, 24, 3), 40 * v + f, np.uint8))
    data = DeepfakeBenchRoot(tmp_path, "UADFV").load(frames_per_video=3, size=16)
    assert data.images.shape == (15, 16, 16, 3)
    assert data.labels.tolist() == [0] * 6 + [1] * 9
    assert len(np.unique(data.videos)) == 5
    (base / "fake" / "frames" / "0000" / "001.png").write_bytes(b"not a png")
    (base / "fake" / "frames" / "0000" / "002.png").write_bytes(b"not a png")
    with pytest.raises(FileNotFoundError, match="expected"):
        DeepfakeBenchRoot(tmp_path, "UADFV").load(frames_per_video=5, size=16)
