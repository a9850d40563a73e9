"""End to end: train.py --smoke and eval.py through main(argv), resume, bad inputs, AUC aggregation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from shared.metrics import roc_auc
from shared.runs import non_finite_tensors
from x2dfd import eval as x2_eval
from x2dfd import train as x2_train
from x2dfd.data import DeepfakeBenchRoot
from x2dfd.pipeline import video_scores

PROJECT = Path(__file__).resolve().parents[1]
SMOKE = ["--smoke", "--device", "cpu", "--quiet", "--threads", "1"]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    return x2_train.main([*SMOKE, "--out", str(out)]), out


def test_train_smoke_writes_run(smoke_run):
    result, _ = smoke_run
    run = Path(result["run"])
    for name in ("config.json", "metrics.jsonl", "log.txt", "mfa.json", "sft_items.json", "eval.json",
                 "pretrain.json", "sfs.json", "checkpoints/last/weights.safetensors",
                 "checkpoints/expert/weights.safetensors", "checkpoints/base/weights.safetensors"):
        assert (run / name).is_file(), name
    ev = json.loads((run / "eval.json").read_text())["train"]
    assert set(ev["metrics"]) == {"in_domain", "unseen_manip", "unseen_family"}
    assert json.loads((run / "status.json").read_text())["state"] == "finished"
    for m in ev["metrics"].values():
        assert 0 <= m["frame_auc"] <= 1 and 0 <= m["video_auc"] <= 1
    items = json.loads((run / "sft_items.json").read_text())
    assert [it["id"] for it in items] == [str(i) for i in range(1, len(items) + 1)]
    human = items[0]["conversations"][0]["value"]
    assert human.startswith("<image>\nIs this image real or fake? And the blending score is ")
    assert items[0]["conversations"][1]["value"].startswith("This image is ")
    mfa = json.loads((run / "mfa.json").read_text())
    assert len(mfa["top_k"]) == 3 and mfa["balanced_accuracy"] == sorted(mfa["balanced_accuracy"], reverse=True)
    assert len(mfa["heldout_balanced_accuracy"]) == len(mfa["order"])
    assert str(run.resolve()) not in (run / "config.json").read_text()  # copyable run folder


def test_default_output_format(smoke_run, tmp_path, capsys):
    """The README quotes the default run's output; a smoke run with the default's epochs prints the same lines."""
    from shared.results import check_default_output
    from shared.runs import load_config_file

    cpu = load_config_file(PROJECT / "configs" / "cpu.yaml")
    same = [f"expert.epochs={cpu['expert']['epochs']}", f"lora.epochs={cpu['lora']['epochs']}",
            f"pretrain.enabled={str(cpu['pretrain']['enabled']).lower()}"]
    x2_train.main(["--smoke", "--device", "cpu", "--threads", "1", "--out", str(tmp_path / "runs"), *same])
    check_default_output(PROJECT / "README.md", capsys.readouterr().out)


def test_reuse_shares_base_mfa_and_expert(smoke_run, tmp_path):
    result, _ = smoke_run
    other = x2_train.main([*SMOKE, "--out", str(tmp_path), "use_sfs=false", f"reuse_from={result['run']}"])
    a, b = Path(result["run"]), Path(other["run"])
    assert json.loads((a / "mfa.json").read_text()) == json.loads((b / "mfa.json").read_text())
    assert (a / "checkpoints/expert/weights.safetensors").read_bytes() == \
        (b / "checkpoints/expert/weights.safetensors").read_bytes()
    with pytest.raises(SystemExit) as err:  # another seed cannot reuse it
        x2_train.main([*SMOKE, "--out", str(tmp_path / "x"), "--seed", "5", f"reuse_from={result['run']}"])
    assert err.value.code == 2 and not (tmp_path / "x").exists()


def test_eval_reloads_run_and_writes_only_inside_it(smoke_run, tmp_path, monkeypatch):
    result, out = smoke_run
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    run = Path(result["run"])
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and run not in p.parents}
    metrics = x2_eval.main([result["run"], "--device", "cpu", "--threads", "1", "--quiet"])
    after = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and run not in p.parents}
    assert before == after and not any(elsewhere.iterdir())
    assert (run / "eval.png").is_file() and (run / "explanations.json").is_file()
    saved = json.loads((run / "eval.json").read_text())
    assert "train" in saved and saved["eval"]["checkpoint"]["name"] == "last"
    # the reloaded model gives the training run's numbers
    for name, m in metrics.items():
        assert abs(m["frame_auc"] - result["metrics"][name]["frame_auc"]) < 1e-6


def test_nan_loss_stops_with_exit_3(tmp_path, capsys):
    with pytest.raises(SystemExit) as err:
        x2_train.main([*SMOKE, "--out", str(tmp_path), "use_sfs=false", "use_wfs=false", "lora.epochs=2",
                       "nan_at_step=3"])
    assert err.value.code == 3
    assert "step 3" in capsys.readouterr().err
    assert non_finite_tensors(tmp_path) == []


def test_unused_data_root_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as err:
        x2_train.main([*SMOKE, "--out", str(tmp_path / "runs"), "--data-root", str(tmp_path)])
    assert err.value.code == 2 and "data-root" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_same_seed_same_metrics(smoke_run, tmp_path):
    result, _ = smoke_run
    again = x2_train.main([*SMOKE, "--out", str(tmp_path)])

    def rows(run):
        lines = (Path(run) / "metrics.jsonl").read_text().splitlines()
        return [{k: v for k, v in json.loads(line).items() if k != "time"} for line in lines]

    assert rows(result["run"]) == rows(again["run"])
    assert again["metrics"] == result["metrics"]


def test_resume_reaches_same_result(smoke_run, tmp_path):
    result, _ = smoke_run
    # a fresh 2-epoch run, and the same run killed after epoch 1 then resumed
    full = x2_train.main([*SMOKE, "--out", str(tmp_path / "a"), "lora.epochs=2", "use_sfs=false"])
    part = x2_train.main([*SMOKE, "--out", str(tmp_path / "b"), "lora.epochs=2", "use_sfs=false",
                          "--stop-after-epoch", "1"])
    resumed = x2_train.main(["--resume", part["run"], "--device", "cpu", "--quiet", "--threads", "1"])
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
    (tmp_path / "empty_root").mkdir()
    with pytest.raises(SystemExit) as err:
        x2_train.main([*SMOKE, "--out", str(tmp_path / "r"), "data.dataset=deepfakebench", "use_wfs=false",
                       "--data-root", str(tmp_path / "empty_root")])
    assert err.value.code == 2 and "FaceForensics++" in capsys.readouterr().err and not (tmp_path / "r").exists()
    with pytest.raises(SystemExit):
        x2_train.main([*SMOKE, "--out", str(tmp_path), "no_such_option=1"])
    assert "no_such_option" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        x2_eval.main([str(tmp_path / "empty")])


def test_corrupt_checkpoint_is_reported(smoke_run, tmp_path):
    result, _ = smoke_run
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(result["run"], copy)
    ckpt = copy / "checkpoints" / "last" / "weights.safetensors"
    ckpt.write_bytes(ckpt.read_bytes()[:100])
    with pytest.raises(SystemExit) as err:  # the manifest check refuses the torn set
        x2_eval.main([str(copy), "--device", "cpu", "--threads", "1"])
    assert err.value.code == 2
    assert (Path(result["run"]) / "checkpoints" / "last" / "weights.safetensors").stat().st_size > 100


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


def _frames(folder: Path, n: int = 3, value: int = 60) -> None:
    import cv2

    folder.mkdir(parents=True)
    for f in range(n):
        cv2.imwrite(str(folder / f"{f:03d}.png"), np.full((12, 12, 3), value + f, np.uint8))


def test_deepfakebench_dfdc_and_dfdcp_label_files(tmp_path):
    # DFDC: test/labels.csv (filename,label; 1 = fake) + test/frames/<video>/
    (tmp_path / "DFDC" / "test").mkdir(parents=True)
    (tmp_path / "DFDC" / "test" / "labels.csv").write_text("filename,label\naaa.mp4,0\nbbb.mp4,1\nccc.mp4,1\n")
    for v in ("aaa", "bbb"):  # ccc has no frames: skipped, as DeepfakeBench does
        _frames(tmp_path / "DFDC" / "test" / "frames" / v)
    dfdc = DeepfakeBenchRoot(tmp_path, "DFDC").load(frames_per_video=2, size=8)
    assert dfdc.labels.tolist() == [0, 0, 1, 1] and dfdc.manipulations == ["real", "real", "DFDC", "DFDC"]
    # DFDC-P: dataset.json with labels and split; only "test" videos are read
    info = {"original_videos/x/r1.mp4": {"label": "real", "set": "test"},
            "method_A/y/f1.mp4": {"label": "fake", "set": "test"},
            "method_B/z/f2.mp4": {"label": "fake", "set": "test"},
            "method_A/y/f3.mp4": {"label": "fake", "set": "train"}}
    (tmp_path / "DFDCP").mkdir()
    (tmp_path / "DFDCP" / "dataset.json").write_text(json.dumps(info))
    for key in info:
        _frames(tmp_path / "DFDCP" / key.split("/")[0] / "frames" / Path(key).stem, n=2)
    dfdcp = DeepfakeBenchRoot(tmp_path, "DFDCP").load(frames_per_video=2, size=8)
    assert sorted(zip(dfdcp.manipulations, dfdcp.labels.tolist())) == sorted(
        [("real", 0)] * 2 + [("method_A", 1)] * 2 + [("method_B", 1)] * 2)
    with pytest.raises(FileNotFoundError, match="labels.csv"):
        DeepfakeBenchRoot(tmp_path / "nothing", "DFDC")
