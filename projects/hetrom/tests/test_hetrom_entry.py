"""End to end: train --smoke and eval into tmp_path, reload, resume, divergence, determinism and bad inputs."""

import json
from pathlib import Path

import pytest
import torch

from hetrom import eval as evaluate_script
from hetrom import train
from hetrom.config import HetromConfig
from hetrom.evaluate import build_model
from shared.results import check_default_output
from shared.runs import RunDir, load_modules, non_finite_tensors

SMOKE = ["--smoke", "--quiet", "--device", "cpu", "--threads", "1"]
README = Path(__file__).resolve().parents[1] / "README.md"


def _weights(run, name="model"):
    cfg = RunDir.open(run).read_config(HetromConfig)
    model = build_model(cfg)
    load_modules(Path(run) / "checkpoints" / "last", {name: model})
    return model


def _metrics(run):
    return [{k: v for k, v in row.items() if k != "time"} for row in RunDir.open(run).read_metrics()]


def test_smoke_train_then_eval_and_reload(tmp_path):
    out = train.main([*SMOKE, "--out", str(tmp_path)])
    run = Path(out["run"])
    for name in ("config.json", "metrics.jsonl", "log.txt", "eval.json", "checkpoints/last/weights.safetensors"):
        assert (run / name).is_file(), name
    rows = RunDir.open(run).read_metrics()
    assert [r["step"] for r in rows] == [2, 4, 6]
    assert rows[-1]["model/kept"] == 4 and rows[-1]["baseline/kept"] == 6  # m=2, k=6 of 6 tasks vs MAML
    saved = json.loads((run / "eval.json").read_text())
    assert set(saved["train"]["results"]) == {"model", "baseline"}
    report = evaluate_script.main([str(run), "--steps", "0", "1", "10", "--quiet"])
    assert report["results"]["model"]["mse_1"] == pytest.approx(saved["train"]["results"]["model"]["mse_1"], rel=1e-5)
    assert report["results"]["model"]["mse_10"] < report["results"]["model"]["mse_0"]  # adaptation helps
    merged = json.loads((run / "eval.json").read_text())
    assert set(merged) >= {"train", "eval"} and merged["eval"]["checkpoint"]["step"] == 6  # train's part is kept
    assert (run / "adaptation.png").is_file()
    assert sum(p.numel() for p in _weights(run).parameters()) == 1761  # 1-40-40-1 MLP


def test_readme_quotes_the_default_runs_output_format(tmp_path, capsys):
    train.main(["--smoke", "--device", "cpu", "--threads", "1", "--out", str(tmp_path / "runs")])
    check_default_output(README, capsys.readouterr().out)


def test_fewshot_smoke_with_sg(tmp_path):
    out = train.main([*SMOKE, "--out", str(tmp_path), "task=fewshot", "method=sg", "first_order=true"])
    acc = out["results"]["model"]["acc_1"]
    assert 0.0 <= acc <= 1.0 and out["methods"] == {"model": "sg", "baseline": "maml"}


def test_resume_of_a_shorter_run_equals_the_longer_run(tmp_path):
    full = train.main([*SMOKE, "--out", str(tmp_path / "a")])
    short = train.main([*SMOKE, "--out", str(tmp_path / "b"), "iterations=3"])
    resumed = train.main(["--quiet", "--threads", "1", "--resume", short["run"], "iterations=6"])
    for a, b in zip(_weights(full["run"]).parameters(), _weights(short["run"]).parameters()):
        torch.testing.assert_close(a, b)
    assert resumed["results"]["model"]["mse_1"] == pytest.approx(full["results"]["model"]["mse_1"], rel=1e-5)


def test_same_seed_same_metrics(tmp_path):
    a = train.main([*SMOKE, "--out", str(tmp_path / "a")])
    b = train.main([*SMOKE, "--out", str(tmp_path / "b")])
    assert _metrics(a["run"]) == _metrics(b["run"])


def test_nan_loss_stops_the_run_with_exit_3_and_nothing_non_finite_saved(tmp_path, monkeypatch, capsys):
    calls = {"n": 0}
    real = train.selected_mean

    def nan_from_the_4th_iteration(losses, mask):
        calls["n"] += 1  # two models per iteration
        value = real(losses, mask)
        return value * float("nan") if calls["n"] > 6 else value

    monkeypatch.setattr(train, "selected_mean", nan_from_the_4th_iteration)
    with pytest.raises(SystemExit) as err:
        train.main([*SMOKE, "--out", str(tmp_path)])
    assert err.value.code == 3
    message = capsys.readouterr().err
    assert "step 4" in message and "model_objective" in message
    assert non_finite_tensors(tmp_path) == []


def test_unused_data_root_is_refused_before_writing(tmp_path, capsys):
    with pytest.raises(SystemExit) as err:
        train.main([*SMOKE, "--out", str(tmp_path / "runs"), "--data-root", str(tmp_path)])
    assert err.value.code == 2 and "not read by this configuration" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_eval_writes_only_inside_the_run_folder(tmp_path, monkeypatch):
    out = train.main([*SMOKE, "--out", str(tmp_path / "runs")])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    run = Path(out["run"])
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if run not in p.parents and p != run}
    evaluate_script.main([str(run), "--quiet"])
    after = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if run not in p.parents and p != run}
    assert before == after


@pytest.mark.parametrize("argv,message", [
    (["nonsense=1"], "unknown config key"),
    (["m=6", "k=6"], "0 <= m < k <= meta_batch"),
    (["method=median"], "not one of"),
    (["task=fewshot", "dataset=omniglot"], "no data root given"),
])
def test_bad_options_fail_before_writing(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as err:
        train.main([*SMOKE, "--out", str(tmp_path / "runs"), *argv])
    assert err.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_malformed_omniglot_root_names_the_layout(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit):
        train.main([*SMOKE, "--out", str(tmp_path / "runs"), "--data-root", str(tmp_path / "empty"),
                    "task=fewshot", "dataset=omniglot"])
    assert "images_background/<alphabet>/<character>/*.png" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_eval_rejects_a_torn_checkpoint_and_keeps_eval_json(tmp_path, capsys):
    out = train.main([*SMOKE, "--out", str(tmp_path)])
    run = Path(out["run"])
    before = (run / "eval.json").read_text()
    (run / "checkpoints" / "last" / "weights.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(SystemExit) as err:
        evaluate_script.main([str(run), "--quiet"])
    assert err.value.code == 2
    assert (run / "eval.json").read_text() == before
    with pytest.raises(SystemExit):
        evaluate_script.main([str(tmp_path / "not-a-run")])
    assert "not a run folder" in capsys.readouterr().err
