"""End to end: train.py --smoke and eval.py into tmp_path, reload, resume, and bad inputs."""

import json
import sys
from pathlib import Path

import pytest
import torch

from shared.runs import RunDir, load_modules

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import eval as sfd_eval  # noqa: E402
import train as sfd_train  # noqa: E402
from sfd.config import Config, build_denoiser  # noqa: E402

FAST = ["--smoke", "--device", "cpu", "--quiet"]


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    result = sfd_train.main(["--config", str(ROOT / "configs/toy2d.yaml"), *FAST, "--out", str(out)])
    return Path(result["run"]), result


def test_smoke_train_writes_a_complete_run_and_reloads(toy_run):
    path, result = toy_run
    run = RunDir.open(path)
    cfg = run.read_config(Config)
    assert cfg.dataset == "toy2d" and cfg.thresholding is False
    for name in ("config.json", "metrics.jsonl", "log.txt", "eval.json", "checkpoints/student.safetensors",
                 "checkpoints/teacher.safetensors"):
        assert (path / name).is_file(), name
    student = build_denoiser(cfg)
    load_modules(path / "checkpoints/student.safetensors", {"student": student})
    rows = json.loads((path / "eval.json").read_text())["rows"]
    methods = [r["method"] for r in rows]
    assert methods[-1] == "SFD" and "Euler + AFS" in methods and "DPM-Solver++(3M) + AFS" in methods
    assert all(r["swd_data"] >= 0 for r in rows)
    sfd_rows = [r for r in run.read_metrics() if r.get("phase") == "sfd"]
    assert [r["iteration"] for r in sfd_rows] == list(range(cfg.distill_iters)) and all(len(r["step_losses"]) == 2 for r in sfd_rows)


def test_eval_samples_at_other_nfes_and_draws_a_figure(toy_run):
    path, _ = toy_run
    rows = sfd_eval.main(["--run", str(path), "--nfe", "2", "3", "--device", "cpu", "eval_samples=64"])
    assert {r["nfe"] for r in rows[1:]} == {2, 3}
    assert (path / "samples_nfe2.png").stat().st_size > 1000
    assert json.loads((path / "eval.json").read_text())["nfe"] == [2, 3]


def test_resume_reaches_the_same_student(toy_run, tmp_path):
    path, _ = toy_run
    # a copy of the finished run, cut back to its mid-distillation checkpoint
    import shutil

    cut = tmp_path / "cut"
    shutil.copytree(path, cut)
    (cut / "checkpoints/student.safetensors").unlink()
    sfd_train.main(["--resume", str(cut), "--device", "cpu", "--quiet"])
    a, b = build_denoiser(Config(dataset="toy2d", width=32)), build_denoiser(Config(dataset="toy2d", width=32))
    load_modules(path / "checkpoints/student.safetensors", {"student": a})
    load_modules(cut / "checkpoints/student.safetensors", {"student": b})
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.allclose(p, q, atol=1e-6)
    rows = [r["iteration"] for r in RunDir.open(cut).read_metrics() if r.get("phase") == "sfd"]
    assert rows == sorted(set(rows))  # no iteration logged twice


def test_digits_sfdv_smoke_reusing_a_teacher(toy_run, tmp_path):
    teacher_run = sfd_train.main([*FAST, "--out", str(tmp_path), "total_kimg=0.016"])["run"]
    result = sfd_train.main([*FAST, "--out", str(tmp_path), f"teacher_path={teacher_run}", "step_condition=true",
                             "step_choices=[4,5]"])
    rows = result["rows"]
    assert [r["nfe"] for r in rows if r["method"] == "SFD-v"] == [2, 3]
    assert all("fd_data" in r for r in rows)
    steps = {r["num_steps"] for r in RunDir.open(result["run"]).read_metrics() if r.get("phase") == "sfd"}
    assert steps <= {4, 5}


def test_bad_inputs(tmp_path, toy_run):
    with pytest.raises(SystemExit):  # unknown config key: argparse error naming the valid keys
        sfd_train.main([*FAST, "--out", str(tmp_path), "num_step=4"])
    with pytest.raises(FileNotFoundError, match="neither a run folder"):
        sfd_train.main([*FAST, "--out", str(tmp_path), f"teacher_path={tmp_path / 'missing'}"])
    with pytest.raises(FileNotFoundError, match="UNet2DModel"):
        sfd_train.main([*FAST, "--out", str(tmp_path), "dataset=cifar10", f"teacher_path={tmp_path}"])
    with pytest.raises(ValueError, match="leaves no network call"):
        sfd_train.main([*FAST, "--out", str(tmp_path), "num_steps=2"])
    with pytest.raises(FileNotFoundError, match="not a run folder"):
        sfd_eval.main(["--run", str(tmp_path)])
    # a corrupt student checkpoint: a clear error, and the file is left as it was
    path, _ = toy_run
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(path, broken)
    target = broken / "checkpoints/student.safetensors"
    target.write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="corrupt or not a safetensors file"):
        sfd_eval.main(["--run", str(broken), "--device", "cpu"])
    assert target.read_bytes() == b"not a safetensors file"


def test_cifar10_root_layout_error(tmp_path):
    from sfd.data import Cifar10Root

    with pytest.raises(FileNotFoundError, match="cifar-10-batches-py"):
        Cifar10Root(tmp_path)


def test_second_stage_smoke_distils_one_nfe_from_an_sfd_run(toy_run, tmp_path):
    path, _ = toy_run
    result = sfd_train.main(["--config", str(ROOT / "configs/second_stage.yaml"), *FAST, "--out", str(tmp_path),
                             f"teacher_path={path}", "dataset=toy2d", "thresholding=false", "sigma_data=1.0"])
    assert result["rows"][-1]["method"] == "SFD" and result["rows"][-1]["nfe"] == 1
