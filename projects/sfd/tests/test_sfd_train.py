"""End to end: train --smoke and eval into tmp_path, reload, resume, determinism, the run machinery's guarantees
(issue 18: NaN stops the run with exit 3, an unused --data-root is refused, eval writes only inside the run
folder) and bad inputs."""

import contextlib
import io
import json
import shutil
from pathlib import Path

import pytest
import torch

from sfd import distill as sfd_distill
from sfd.config import Config, build_denoiser
from sfd.eval import main as eval_main
from sfd.train import main as train_main
from shared.results import check_default_output
from shared.runs import RunDir, load_modules, non_finite_tensors

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--smoke", "--device", "cpu", "--quiet", "--threads", "1"]
TRAIN_TEACHER = ["teacher_path=null", "width=32"]  # a tiny teacher trained in the run (not the committed one)


def drop_time(rows):
    return [{k: v for k, v in r.items() if k != "time"} for r in rows]


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    result = train_main(["--config", str(ROOT / "configs/toy2d.yaml"), *FAST, "width=32", "--out", str(out)])
    return Path(result["run"]), result


def test_default_smoke_prints_the_readme_lines(tmp_path):
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        result = train_main(["--smoke", "--device", "cpu", "--threads", "1", "--out", str(tmp_path / "runs")])
    check_default_output(ROOT / "README.md", stdout.getvalue())
    assert result["rows"][-1]["method"] == "SFD"


def test_smoke_train_writes_a_complete_run_and_reloads(toy_run):
    path, result = toy_run
    run = RunDir.open(path)
    cfg = run.read_config(Config)
    assert cfg.dataset == "toy2d" and cfg.thresholding is False
    assert json.loads((path / "config.json").read_text())["meta"]["threads"] == 1
    for name in ("config.json", "metrics.jsonl", "log.txt", "eval.json", "status.json",
                 "checkpoints/last/weights.safetensors", "checkpoints/teacher/weights.safetensors"):
        assert (path / name).is_file(), name
    assert run.status()["state"] == "finished"
    student = build_denoiser(cfg)
    load_modules(path / "checkpoints/last", {"student": student})
    rows = json.loads((path / "eval.json").read_text())["train"]["rows"]
    methods = [r["method"] for r in rows]
    assert methods[-1] == "SFD" and "Euler + AFS" in methods and "DPM-Solver++(3M) + AFS" in methods
    assert all(r["swd_data"] >= 0 for r in rows)
    sfd_rows = [r for r in run.read_metrics() if r.get("phase") == "sfd"]
    assert [r["iteration"] for r in sfd_rows] == list(range(cfg.distill_iters))
    assert all(len(r["step_losses"]) == 2 for r in sfd_rows)


def test_eval_samples_at_other_nfes_draws_a_figure_and_writes_only_inside_the_run(toy_run, tmp_path, monkeypatch):
    path, _ = toy_run
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    outside = lambda: {p: p.stat().st_mtime_ns for p in path.parent.rglob("*")  # noqa: E731
                       if path not in p.parents and p != path}
    before = outside()
    rows = eval_main([str(path), "--nfe", "2", "3", "--device", "cpu", "--quiet", "eval_samples=64"])
    assert outside() == before and not any(elsewhere.iterdir())
    assert {r["nfe"] for r in rows[1:]} == {2, 3}
    assert (path / "samples_nfe2.png").stat().st_size > 1000
    saved = json.loads((path / "eval.json").read_text())
    assert saved["eval"]["nfe"] == [2, 3] and "rows" in saved["train"]  # what train wrote is kept
    with pytest.raises(SystemExit) as exc:  # eval cannot change how the run was trained
        eval_main([str(path), "--device", "cpu", "--quiet", "num_steps=5"])
    assert exc.value.code == 2


def test_same_seed_gives_the_same_run(toy_run, tmp_path):
    path, _ = toy_run
    again = train_main(["--config", str(ROOT / "configs/toy2d.yaml"), *FAST, "width=32", "--out", str(tmp_path)])
    assert drop_time(RunDir.open(path).read_metrics()) == drop_time(RunDir.open(again["run"]).read_metrics())


def test_resume_after_a_kill_reaches_the_uninterrupted_student(toy_run, tmp_path, monkeypatch):
    import sfd.train as sfd_train

    path, _ = toy_run
    real, calls = sfd_train.teacher_trajectory, {"n": 0}

    def dies_in_iteration_3(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # after the iteration-2 checkpoint (ckpt_every = 2 in --smoke)
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(sfd_train, "teacher_trajectory", dies_in_iteration_3)
    with pytest.raises(KeyboardInterrupt):
        train_main(["--config", str(ROOT / "configs/toy2d.yaml"), *FAST, "width=32", "--out", str(tmp_path)])
    monkeypatch.setattr(sfd_train, "teacher_trajectory", real)
    (killed,) = [p.parent for p in tmp_path.glob("*/config.json")]
    assert RunDir.open(killed).checkpoint_info("last").step == 2 and RunDir.open(killed).status()["state"] == "running"
    train_main(["--resume", str(killed), "--device", "cpu", "--quiet", "--threads", "1"])
    full, resumed = build_denoiser(Config(dataset="toy2d", width=32)), build_denoiser(Config(dataset="toy2d", width=32))
    load_modules(path / "checkpoints/last", {"student": full})
    load_modules(killed / "checkpoints/last", {"student": resumed})
    for p, q in zip(full.parameters(), resumed.parameters()):
        assert torch.equal(p, q)
    assert drop_time(RunDir.open(path).read_metrics()) == drop_time(RunDir.open(killed).read_metrics())


def test_nan_loss_stops_the_run_with_exit_3_and_saves_nothing_non_finite(tmp_path, monkeypatch, capsys):
    real = sfd_distill.trajectory_loss
    calls = {"n": 0}

    def poisoned(student_out, teacher_out, metric="l1"):
        calls["n"] += 1
        loss = real(student_out, teacher_out, metric)
        return loss * float("nan") if calls["n"] == 3 else loss

    monkeypatch.setattr(sfd_distill, "trajectory_loss", poisoned)
    with pytest.raises(SystemExit) as exc:
        train_main([*FAST, *TRAIN_TEACHER, "--out", str(tmp_path)])
    assert exc.value.code == 3
    err = capsys.readouterr().err
    assert "diverged at step 1, student step" in err and "loss = nan" in err
    assert non_finite_tensors(tmp_path) == []


def test_unused_data_root_is_refused_before_anything_is_written(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        train_main([*FAST, "--data-root", str(tmp_path), "--out", str(tmp_path / "runs")])
    assert exc.value.code == 2 and "not read" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_digits_sfdv_smoke_reusing_a_teacher(tmp_path):
    teacher_run = train_main([*FAST, "--out", str(tmp_path), *TRAIN_TEACHER, "total_kimg=0.016"])["run"]
    result = train_main([*FAST, "--out", str(tmp_path), f"teacher_path={teacher_run}", "width=32",
                         "step_condition=true", "step_choices=[4,5]"])
    rows = result["rows"]
    assert [r["nfe"] for r in rows if r["method"] == "SFD-v"] == [2, 3]
    assert all("fd_data" in r for r in rows)
    steps = {r["num_steps"] for r in RunDir.open(result["run"]).read_metrics() if r.get("phase") == "sfd"}
    assert steps <= {4, 5}


def test_bad_inputs_give_clear_errors_before_a_run_folder_exists(tmp_path, toy_run, capsys):
    out = ["--out", str(tmp_path / "runs")]
    cases = [(["num_step=4"], "num_step"),  # unknown config key
             ([f"teacher_path={tmp_path / 'missing'}"], "neither a run folder"),
             (["dataset=cifar10", f"teacher_path={tmp_path}"], "UNet2DModel"),
             (["num_steps=2"], "leaves no network call")]
    for overrides, message in cases:
        with pytest.raises(SystemExit) as exc:
            train_main([*FAST, *out, *overrides])
        assert exc.value.code == 2 and message in capsys.readouterr().err, overrides
    assert not (tmp_path / "runs").exists()
    with pytest.raises(SystemExit) as exc:
        eval_main([str(tmp_path)])
    assert exc.value.code == 2 and "not a run folder" in capsys.readouterr().err
    # a corrupt student checkpoint: a clear error, and the file is left as it was
    path, _ = toy_run
    broken = tmp_path / "broken"
    shutil.copytree(path, broken)
    target = broken / "checkpoints/last/weights.safetensors"
    target.write_bytes(b"not a safetensors file")
    with pytest.raises(SystemExit) as exc:
        eval_main([str(broken), "--device", "cpu", "--quiet"])
    assert exc.value.code == 2 and "does not match its manifest" in capsys.readouterr().err
    assert target.read_bytes() == b"not a safetensors file"


def test_cifar10_root_layout_error(tmp_path):
    from sfd.data import Cifar10Root

    with pytest.raises(FileNotFoundError, match="cifar-10-batches-py"):
        Cifar10Root(tmp_path)


def test_second_stage_smoke_distils_one_nfe_from_an_sfd_run(toy_run, tmp_path):
    path, _ = toy_run
    result = train_main(["--config", str(ROOT / "configs/second_stage.yaml"), *FAST, "--out", str(tmp_path),
                         f"teacher_path={path}", "dataset=toy2d", "thresholding=false", "sigma_data=1.0",
                         "width=32"])
    assert result["rows"][-1]["method"] == "SFD" and result["rows"][-1]["nfe"] == 1


def test_reproduce_entry_point_parses_and_rejects_bad_threads(capsys):
    from sfd.reproduce import main as reproduce_main

    with pytest.raises(SystemExit) as exc:
        reproduce_main(["--help"])
    assert exc.value.code == 0 and "--threads" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        reproduce_main(["--threads", "0"])
    assert exc.value.code == 2
