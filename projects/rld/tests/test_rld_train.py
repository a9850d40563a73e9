"""End to end: train --smoke and eval into tmp_path, resume, determinism, the paper recipe on a fake CIFAR-100
root, the run machinery's guarantees (issue 18: NaN stops the run with exit 3, an unused --data-root is refused,
eval writes only inside the run folder) and bad inputs (clear errors, nothing already written lost)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from rld import engine
from rld.eval import main as eval_main
from rld.models import build_model
from rld.train import main as train_main
from shared.results import check_default_output
from shared.runs import non_finite_tensors

PROJECT = Path(__file__).resolve().parents[1]
COMMON = ["--device", "cpu", "--threads", "1"]


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("smoke") / "runs"
    import contextlib
    import io

    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        result = train_main(["--smoke", "--method", "rld", "--out", str(out), *COMMON])
    return Path(result["run"]), result, stdout.getvalue()


def test_smoke_train_prints_the_readme_lines_then_eval_reloads(smoke_run):
    run, out, stdout = smoke_run
    check_default_output(PROJECT / "README.md", stdout)
    config = json.loads((run / "config.json").read_text())
    assert config["config"]["method"] == "rld" and config["config"]["epochs"] == 3
    assert config["meta"]["threads"] == 1
    rows = metrics(run)
    assert [r["epoch"] for r in rows] == [1, 2, 3] and all(np.isfinite(r["loss"]) for r in rows)
    for name in ("last", "best", "teacher"):
        assert (run / "checkpoints" / name / "weights.safetensors").is_file()
    assert 0.0 < out["teacher_train_error"] <= 1.0  # 20% injected mistakes on a 5-epoch teacher
    result = eval_main([str(run), "--device", "cpu", "--quiet"])
    # eval reloads the saved student and recomputes exactly the accuracy the trainer logged
    assert result["test_acc"] == pytest.approx(rows[-1]["test_acc"], abs=1e-9)
    saved = json.loads((run / "eval.json").read_text())
    assert saved["eval"]["test_acc"] == result["test_acc"] and saved["eval"]["checkpoint"]["step"] == 3
    assert saved["train"]["last_test_acc"] == rows[-1]["test_acc"]  # what train wrote is kept
    assert result["corrupted_samples"] > 0 and (run / "curves.png").stat().st_size > 1000


def test_eval_writes_only_inside_the_run_folder(smoke_run, tmp_path, monkeypatch):
    run, _, _ = smoke_run
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    root = run.parents[1]
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*") if run not in p.parents and p != run}
    eval_main([str(run), "--checkpoint", "best", "--device", "cpu", "--quiet"])
    after = {p: p.stat().st_mtime_ns for p in root.rglob("*") if run not in p.parents and p != run}
    assert before == after and not any(elsewhere.iterdir())


def test_resume_and_determinism(tmp_path):
    base = ["--smoke", "--method", "dkd", "--quiet", *COMMON]
    full = train_main([*base, "--out", str(tmp_path / "a")])
    again = train_main([*base, "--out", str(tmp_path / "b")])
    drop_time = lambda rows: [{k: v for k, v in r.items() if k != "time"} for r in rows]  # noqa: E731
    assert drop_time(metrics(Path(full["run"]))) == drop_time(metrics(Path(again["run"])))  # same seed, same run
    part = train_main([*base, "--out", str(tmp_path / "c"), "epochs=2"])
    resumed = train_main(["--resume", part["run"], "epochs=3", "--quiet", *COMMON])
    assert resumed["run"] == part["run"]
    rows_full, rows_res = metrics(Path(full["run"])), metrics(Path(part["run"]))
    assert [r["epoch"] for r in rows_res] == [1, 2, 3]
    for a, b in zip(rows_full, rows_res):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-6)
        assert a["test_acc"] == pytest.approx(b["test_acc"], abs=1e-9)


def test_nan_loss_stops_the_run_with_exit_3_and_saves_nothing_non_finite(tmp_path, monkeypatch, capsys):
    real = engine.objective

    def poisoned(cfg, student_logits, teacher_logits, target, epoch):
        loss = real(cfg, student_logits, teacher_logits, target, epoch)
        return loss * float("nan") if epoch == 2 else loss

    monkeypatch.setattr(engine, "objective", poisoned)
    with pytest.raises(SystemExit) as exc:
        train_main(["--smoke", "--out", str(tmp_path), "--quiet", *COMMON])
    assert exc.value.code == 3
    err = capsys.readouterr().err
    assert "step 1 of epoch 2" in err and "rld loss = nan" in err
    assert non_finite_tensors(tmp_path) == []


def test_unused_data_root_is_refused_before_anything_is_written(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        train_main(["--smoke", "--data-root", str(tmp_path), "--out", str(tmp_path / "runs"), *COMMON])
    assert exc.value.code == 2 and "not read" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


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

    monkeypatch.setattr(tv_cifar.CIFAR100, "_check_integrity", lambda self: True)  # fake files have no official md5
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *a, **k: True)
    _fake_cifar100(tmp_path / "cifar")
    teacher = tmp_path / "ckpt_epoch_240.pth"
    torch.save({"model": build_model("resnet32x4", 100).state_dict(), "epoch": 240}, teacher)  # mdistiller format
    out = train_main(["--config", str(PROJECT / "configs/paper/resnet32x4_resnet8x4.yaml"), "--data-root",
                      str(tmp_path / "cifar"), "--out", str(tmp_path / "runs"), f"teacher_checkpoint={teacher}",
                      "epochs=1", "batch_size=4", "test_batch_size=8", "max_steps_per_epoch=2", "num_workers=0",
                      "--quiet", *COMMON])
    config = json.loads((Path(out["run"]) / "config.json").read_text())["config"]
    assert (config["student"], config["lr"], config["epochs"], config["rld"]["beta"]) == ("resnet8x4", 0.05, 1, 8.0)
    rows = metrics(Path(out["run"]))
    assert len(rows) == 1 and np.isfinite(rows[0]["loss"]) and 0.0 <= rows[0]["test_acc"] <= 1.0


def test_bad_inputs_give_clear_errors_before_a_run_folder_exists(tmp_path, capsys):
    out = ["--out", str(tmp_path / "runs"), *COMMON]
    with pytest.raises(SystemExit):
        train_main(["--method", "fitnet", *out])
    assert "invalid choice" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        train_main(["--smoke", "no_such_key=1", *out])
    assert exc.value.code == 2 and "no_such_key" in capsys.readouterr().err
    paper = ["--config", str(PROJECT / "configs/paper/vgg13_vgg8.yaml"), *out]
    with pytest.raises(SystemExit) as exc:
        train_main([*paper, "--data-root", str(tmp_path / "missing")])
    assert exc.value.code == 2 and "does not exist" in capsys.readouterr().err
    _fake_cifar100(tmp_path / "cifar")
    with pytest.raises(SystemExit) as exc:
        train_main([*paper, "--data-root", str(tmp_path / "cifar"), "teacher_checkpoint=" + str(tmp_path / "no.pth")])
    assert exc.value.code == 2 and "cifar_teachers" in capsys.readouterr().err
    bad_teacher = tmp_path / "teacher.pth"
    bad_teacher.write_bytes(b"garbage")
    with pytest.raises(SystemExit) as exc:
        train_main(["--smoke", f"teacher_checkpoint={bad_teacher}", *out])
    assert exc.value.code == 2 and "corrupt" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_corrupt_checkpoint_is_reported_and_nothing_is_lost(tmp_path, capsys):
    out = train_main(["--smoke", "--out", str(tmp_path), "--quiet", *COMMON])
    run = Path(out["run"])
    metrics_before = (run / "metrics.jsonl").read_text()
    (run / "checkpoints" / "last" / "weights.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(SystemExit) as exc:
        eval_main([str(run), "--device", "cpu", "--quiet"])
    assert exc.value.code == 2 and "does not match its manifest" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        train_main(["--resume", str(run), "--quiet", *COMMON])
    assert exc.value.code == 2
    assert (run / "metrics.jsonl").read_text() == metrics_before
    assert (run / "checkpoints" / "best" / "weights.safetensors").is_file()


def test_reproduce_entry_point_parses_and_rejects_bad_threads(capsys):
    from rld.reproduce import main as reproduce_main

    with pytest.raises(SystemExit) as exc:
        reproduce_main(["--help"])
    assert exc.value.code == 0 and "--threads" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        reproduce_main(["--threads", "0"])
    assert exc.value.code == 2
