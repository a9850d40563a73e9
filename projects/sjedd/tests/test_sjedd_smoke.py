"""End to end on the run machinery (shared/RUNS.md): train --smoke and eval into tmp_path, reload what they wrote,
resume, same seed = same metrics, NaN stops the run, an unused --data-root is refused, eval writes only inside the
run folder, and bad input."""

import json
from pathlib import Path

import pytest
import torch

import sjedd.train
from shared.results import check_default_output
from shared.runs import RunDir, load_modules, non_finite_tensors
from sjedd.config import Config
from sjedd.eval import main as evaluate
from sjedd.train import main as train
from sjedd.training import build_model

README = Path(__file__).resolve().parents[1] / "README.md"
SMOKE = ["--smoke", "--quiet", "--device", "cpu", "--threads", "1"]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """One default smoke run (SJEDD: CNN tower, joint embedding, Auto-lambda) and what it printed."""
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        result = train(["--smoke", "--device", "cpu", "--threads", "1",
                        "--out", str(tmp_path_factory.mktemp("smoke") / "runs")])
    return result["run"], out.getvalue()


def test_train_eval_reload(smoke_run):
    run_path, printed = smoke_run
    run = RunDir.open(run_path)
    for name in ("config.json", "metrics.jsonl", "log.txt", "eval.json", "status.json",
                 "checkpoints/last/weights.safetensors"):
        assert (run_path / name).is_file(), name
    rows = run.read_metrics()
    assert {"L1", "L2", "L3", "loss", "lambda1", "lambda2", "lambda3"} <= rows[0].keys()
    trained = run.read_json("eval.json")["train"]
    assert run.status()["state"] == "finished"

    results = evaluate([str(run_path), "--device", "cpu", "--quiet", "--threads", "1"])
    assert results["splits"]["test"]["frame_auc"] == pytest.approx(trained["splits"]["test"]["frame_auc"])
    merged = run.read_json("eval.json")
    assert {"train", "eval"} <= merged.keys() and merged["eval"]["checkpoint"]["name"] == "last"
    assert (run_path / "explanations.png").stat().st_size > 0
    header = (run_path / "predictions.csv").read_text().splitlines()[0]
    assert header.startswith("split,index,class,video,fake,expression")

    model = build_model(run.read_config(Config))
    load_modules(run_path / "checkpoints/last", {"model": model})
    assert model.image_tower is not None  # the offline default's CNN image tower


def test_readme_quotes_the_default_output_format(smoke_run):
    check_default_output(README, smoke_run[1])


def test_resume_reaches_the_uninterrupted_result(tmp_path):
    full = RunDir.open(train([*SMOKE, "--out", str(tmp_path / "a"), "epochs=2", "aug=false"])["run"])
    part = train([*SMOKE, "--out", str(tmp_path / "b"), "epochs=1", "aug=false"])["run"]
    resumed = RunDir.open(train(["--quiet", "--threads", "1", "--resume", str(part), "epochs=2"])["run"])
    a = full.read_json("eval.json")["train"]["splits"]["test"]["frame_auc"]
    b = resumed.read_json("eval.json")["train"]["splits"]["test"]["frame_auc"]
    assert a == pytest.approx(b, abs=1e-6)
    drop = lambda rows: [{k: v for k, v in r.items() if k != "time"} for r in rows]  # noqa: E731
    assert drop(resumed.read_metrics()) == drop(full.read_metrics())


def test_same_seed_same_metrics(tmp_path, smoke_run):
    again = RunDir.open(train([*SMOKE, "--out", str(tmp_path)])["run"])
    first = RunDir.open(smoke_run[0])
    drop = lambda rows: [{k: v for k, v in r.items() if k != "time"} for r in rows]  # noqa: E731
    assert drop(again.read_metrics()) == drop(first.read_metrics())


def test_nan_loss_stops_the_run(tmp_path, monkeypatch, capsys):
    real = sjedd.train.batch_losses
    def nan_after_first_checkpoint(model, batch, method):  # the first step after a checkpoint set was written
        losses = real(model, batch, method)
        return losses * float("nan") if any(tmp_path.rglob("manifest.json")) else losses

    monkeypatch.setattr(sjedd.train, "batch_losses", nan_after_first_checkpoint)
    with pytest.raises(SystemExit) as info:
        train([*SMOKE, "--out", str(tmp_path), "method=fixed"])
    assert info.value.code == 3
    err = capsys.readouterr().err
    assert "diverged at step" in err and "loss" in err
    assert non_finite_tensors(tmp_path) == []  # the sets saved before the NaN exist and are finite


def test_unused_data_root_is_refused(tmp_path, capsys):
    (tmp_path / "lists").mkdir()
    with pytest.raises(SystemExit) as info:
        train([*SMOKE, "--out", str(tmp_path / "runs"), "--data-root", str(tmp_path / "lists")])
    assert info.value.code == 2
    assert "not read by this configuration" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_eval_writes_only_inside_the_run_folder(tmp_path, monkeypatch, smoke_run):
    import shutil

    run_path = Path(shutil.copytree(smoke_run[0], tmp_path / "run"))
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    outside = lambda: {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")  # noqa: E731
                       if p != run_path and run_path not in p.parents and p.is_file()}
    before = outside()
    evaluate([str(run_path), "--device", "cpu", "--quiet", "--threads", "1"])
    assert outside() == before


def test_bad_input(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:  # the paper's data without a data root
        train([*SMOKE, "--out", str(tmp_path), "dataset=lists"])
    assert info.value.code == 2 and "needs --data-root" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:  # a data root without its list files
        train([*SMOKE, "--out", str(tmp_path), "dataset=lists", "--data-root", str(tmp_path)])
    assert info.value.code == 2 and "train.txt" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train([*SMOKE, "method=heads"])
    assert "not one of" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing was created by the refused starts
    run_path = train([*SMOKE, "--out", str(tmp_path), "epochs=1"])["run"]
    (run_path / "checkpoints/last/weights.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(SystemExit) as info:
        evaluate([str(run_path), "--device", "cpu", "--quiet"])
    assert info.value.code == 2
    assert json.loads((run_path / "eval.json").read_text())["train"]  # what train wrote is still there
    from sjedd.data import ListFileDataset

    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "train.txt").write_text("a.png deepfake\n")
    with pytest.raises(ValueError, match="unknown label"):
        ListFileDataset(tmp_path / "lists", "train")


def test_binary_baseline_smoke(tmp_path):
    results = train([*SMOKE, "--out", str(tmp_path), "method=binary"])
    assert results["method"] == "binary" and "node_accuracy_fakes" not in results["splits"]["test"]


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
