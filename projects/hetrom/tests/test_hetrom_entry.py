"""End to end: train.py --smoke and eval.py into tmp_path, reload, resume, and bad inputs."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from shared.runs import RunDir, load_modules

from hetrom.config import HetromConfig
from hetrom.evaluate import build_model

ROOT = Path(__file__).resolve().parents[1]


def _load(name):
    spec = importlib.util.spec_from_file_location(f"hetrom_{name}_script", ROOT / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


train, evaluate_script = _load("train"), _load("eval")


def _weights(run, name="model"):
    cfg = RunDir.open(run).read_config(HetromConfig)
    model = build_model(cfg)
    load_modules(Path(run) / "checkpoints" / "last.safetensors", {name: model})
    return model


def test_smoke_train_then_eval_and_reload(tmp_path):
    out = train.main(["--smoke", "--quiet", "--device", "cpu", "--out", str(tmp_path)])
    run = Path(out["run"])
    for name in ("config.json", "metrics.jsonl", "log.txt", "eval.json", "checkpoints/last.safetensors"):
        assert (run / name).is_file(), name
    rows = RunDir.open(run).read_metrics()
    assert [r["step"] for r in rows] == [2, 4, 6]
    assert rows[-1]["model/kept"] == 4 and rows[-1]["baseline/kept"] == 6  # m=2, k=6 of 6 tasks vs MAML
    saved = json.loads((run / "eval.json").read_text())
    assert set(saved["results"]) == {"model", "baseline"}
    report = evaluate_script.main([str(run), "--steps", "0", "1", "10", "--quiet"])
    assert report["results"]["model"]["mse_1"] == pytest.approx(saved["results"]["model"]["mse_1"], rel=1e-5)
    assert report["results"]["model"]["mse_10"] < report["results"]["model"]["mse_0"]  # adaptation helps
    assert (run / "adaptation.png").is_file()
    assert sum(p.numel() for p in _weights(run).parameters()) == 1761  # 1-40-40-1 MLP


def test_fewshot_smoke_with_sg(tmp_path):
    out = train.main(["--smoke", "--quiet", "--device", "cpu", "--out", str(tmp_path), "task=fewshot",
                      "method=sg", "first_order=true"])
    acc = out["results"]["model"]["acc_1"]
    assert 0.0 <= acc <= 1.0 and out["methods"] == {"model": "sg", "baseline": "maml"}


def test_resume_reaches_the_uninterrupted_result(tmp_path, monkeypatch):
    full = train.main(["--smoke", "--quiet", "--device", "cpu", "--out", str(tmp_path / "a")])
    calls = {"n": 0}
    original = train.meta_step

    def killed_after_4_iterations(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 8:  # two models per iteration: the 5th iteration is killed, the checkpoint is at 3
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(train, "meta_step", killed_after_4_iterations)
    with pytest.raises(KeyboardInterrupt):
        train.main(["--smoke", "--quiet", "--device", "cpu", "--out", str(tmp_path / "b")])
    monkeypatch.setattr(train, "meta_step", original)
    (killed,) = (tmp_path / "b").iterdir()
    resumed = train.main(["--smoke", "--quiet", "--device", "cpu", "--resume", str(killed)])
    assert [r["step"] for r in RunDir.open(killed).read_metrics()] == [2, 4, 6]
    for a, b in zip(_weights(full["run"]).parameters(), _weights(killed).parameters()):
        torch.testing.assert_close(a, b)
    assert resumed["results"]["model"]["mse_1"] == pytest.approx(full["results"]["model"]["mse_1"], rel=1e-5)


@pytest.mark.parametrize("argv,message", [
    (["nonsense=1"], "unknown config key"),
    (["m=6", "k=6"], "0 <= m < k <= meta_batch"),
    (["method=median"], "not one of"),
    (["task=fewshot", "dataset=omniglot"], "no data root given"),
])
def test_bad_options_fail_before_writing(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as err:
        train.main(["--smoke", "--quiet", "--device", "cpu", "--out", str(tmp_path / "runs"), *argv])
    assert err.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_missing_omniglot_root_names_the_layout(tmp_path, capsys):
    with pytest.raises(SystemExit):
        train.main(["--smoke", "--quiet", "--out", str(tmp_path / "runs"), "--data-root", str(tmp_path / "none"),
                    "task=fewshot", "dataset=omniglot"])
    assert "images_background/<alphabet>/<character>/*.png" in capsys.readouterr().err


def test_eval_rejects_corrupt_checkpoint_and_keeps_eval_json(tmp_path, capsys):
    out = train.main(["--smoke", "--quiet", "--device", "cpu", "--out", str(tmp_path)])
    run = Path(out["run"])
    before = (run / "eval.json").read_text()
    (run / "checkpoints" / "last.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="corrupt"):
        evaluate_script.main([str(run), "--quiet"])
    assert (run / "eval.json").read_text() == before
    with pytest.raises(SystemExit):
        evaluate_script.main([str(tmp_path / "not-a-run")])
    assert "is not a run folder" in capsys.readouterr().err
