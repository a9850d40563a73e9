"""End to end: train.py --smoke and eval.py into tmp_path, resume, the paper recipe on a fake CIFAR-100 root,
and bad inputs (clear errors, nothing already written lost)."""

from __future__ import annotations

import importlib.util
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

HERE = Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"rld_entry_{name}", HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


train = _load("train")
evaluate = _load("eval")
COMMON = ["--device", "cpu", "--quiet"]


def test_smoke_train_then_eval_reload(tmp_path):
    out = train.main(["--smoke", "--method", "rld", "--out", str(tmp_path), *COMMON])
    run = Path(out["run"])
    config = json.loads((run / "config.json").read_text())["config"]
    assert config["method"] == "rld" and config["dataset"] == "digits" and config["epochs"] == 3
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert all(np.isfinite(r["loss"]) for r in rows)
    for name in ("last", "best", "teacher"):
        assert (run / "checkpoints" / f"{name}.safetensors").is_file()
    assert 0.0 < out["teacher_train_error"] <= 1.0  # 20% injected mistakes on a 5-epoch teacher
    result = evaluate.main(["--run", str(run), "--device", "cpu", "--quiet"])
    # eval reloads the saved student and recomputes exactly the accuracy the trainer logged
    assert result["test_acc"] == pytest.approx(rows[-1]["test_acc"], abs=1e-9)
    assert json.loads((run / "eval.json").read_text())["test_acc"] == result["test_acc"]
    assert result["corrupted_samples"] > 0 and (run / "curves.png").stat().st_size > 1000


def test_resume_reaches_the_uninterrupted_result(tmp_path):
    base = ["--smoke", "--method", "dkd", *COMMON]
    full = train.main([*base, "--out", str(tmp_path / "a")])
    part = train.main([*base, "--out", str(tmp_path / "b"), "epochs=2"])
    resumed = train.main(["--resume", part["run"], "epochs=3", *COMMON])
    assert resumed["run"] == part["run"]
    rows_full = [json.loads(x) for x in (Path(full["run"]) / "metrics.jsonl").read_text().splitlines()]
    rows_res = [json.loads(x) for x in (Path(part["run"]) / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows_res] == [1, 2, 3]
    for a, b in zip(rows_full, rows_res):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-6)
        assert a["test_acc"] == pytest.approx(b["test_acc"], abs=1e-9)


def _fake_cifar100(root: Path, n: int = 16) -> None:
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        entry = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), "fine_labels": list(rng.integers(0, 100, n))}
        (folder / split).write_bytes(pickle.dumps(entry))
    (folder / "meta").write_bytes(pickle.dumps({"fine_label_names": [f"class{i}" for i in range(100)]}))


def test_paper_recipe_runs_on_cifar_shaped_data(tmp_path, monkeypatch):
    """configs/paper/resnet32x4_resnet8x4.yaml end to end through torchvision's CIFAR100 on random images."""
    import torchvision.datasets.cifar as tv_cifar

    from rld.models import build_model

    monkeypatch.setattr(tv_cifar.CIFAR100, "_check_integrity", lambda self: True)  # fake files have no official md5
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *a, **k: True)
    _fake_cifar100(tmp_path / "cifar")
    teacher = tmp_path / "ckpt_epoch_240.pth"
    torch.save({"model": build_model("resnet32x4", 100).state_dict(), "epoch": 240}, teacher)  # mdistiller format
    out = train.main(["--config", str(HERE / "configs/paper/resnet32x4_resnet8x4.yaml"), "--data-root",
                      str(tmp_path / "cifar"), "--out", str(tmp_path / "runs"), f"teacher_checkpoint={teacher}",
                      "epochs=1", "batch_size=4", "test_batch_size=8", "max_steps_per_epoch=2", "num_workers=0",
                      *COMMON])
    config = json.loads((Path(out["run"]) / "config.json").read_text())["config"]
    assert (config["student"], config["lr"], config["epochs"], config["rld"]["beta"]) == ("resnet8x4", 0.05, 1, 8.0)
    rows = [json.loads(x) for x in (Path(out["run"]) / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and np.isfinite(rows[0]["loss"]) and 0.0 <= rows[0]["test_acc"] <= 1.0


def test_bad_inputs_give_clear_errors(tmp_path, capsys):
    with pytest.raises(SystemExit):
        train.main(["--method", "fitnet", *COMMON])
    assert "invalid choice" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train.main(["--smoke", "no_such_key=1", *COMMON])
    assert "unknown config key" in capsys.readouterr().err
    paper = ["--config", str(HERE / "configs/paper/vgg13_vgg8.yaml"), "--out", str(tmp_path), *COMMON]
    with pytest.raises(FileNotFoundError, match="CIFAR-100"):
        train.main([*paper, "--data-root", str(tmp_path / "missing")])
    _fake_cifar100(tmp_path / "cifar")
    with pytest.raises(FileNotFoundError, match="cifar_teachers"):
        train.main([*paper, "--data-root", str(tmp_path / "cifar"), "teacher_checkpoint=" + str(tmp_path / "no.pth")])


def test_corrupt_checkpoint_is_reported_and_nothing_is_lost(tmp_path):
    out = train.main(["--smoke", "--out", str(tmp_path), *COMMON])
    run = Path(out["run"])
    metrics_before = (run / "metrics.jsonl").read_text()
    (run / "checkpoints" / "last.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="corrupt"):
        evaluate.main(["--run", str(run), "--device", "cpu", "--quiet"])
    with pytest.raises(ValueError, match="corrupt"):
        train.main(["--resume", str(run), *COMMON])
    assert (run / "metrics.jsonl").read_text() == metrics_before
    assert (run / "checkpoints" / "best.safetensors").is_file()
    bad_teacher = tmp_path / "teacher.pth"
    bad_teacher.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="corrupt"):
        train.main(["--smoke", "--out", str(tmp_path), f"teacher_checkpoint={bad_teacher}", *COMMON])
