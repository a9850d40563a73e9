"""End to end on shared.runs: train --smoke, the judges --smoke, eval RUN; resume, NaN guard, data-root refusal,
eval writes only inside the run, same-seed determinism, bad inputs."""

import json
from pathlib import Path

import pytest
import torch

from conddiff import eval as eval_mod
from conddiff import train, train_judge
from conddiff.pipeline import load_pipeline
from shared.runs import non_finite_tensors

PROJECT = Path(__file__).resolve().parents[1]
SMOKE = ["--smoke", "--threads", "1", "--quiet", "--device", "cpu"]
NO_EVAL = "eval_samples=0"


def _files(root: Path, skip: Path | None = None) -> dict[str, float]:
    return {str(p): p.stat().st_mtime for p in root.rglob("*")
            if p.is_file() and (skip is None or skip not in p.parents)}


def _metrics(run: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k != "time"}
            for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_train_eval_smoke_resume_and_reload(tmp_path, monkeypatch, capsys):
    judge = train_judge.main(["--smoke", "--out", str(tmp_path / "judge"), "--device", "cpu"])
    capsys.readouterr()
    run = train.main(["--smoke", "--threads", "1", "--device", "cpu", "--out", str(tmp_path / "runs"),
                      f"judge={judge}", "eval_samples=4"])
    out = capsys.readouterr().out
    from shared.results import check_default_output

    check_default_output(PROJECT / "README.md", out)
    summary = json.loads((run / "eval.json").read_text())["train"]
    assert summary["steps"] == 3 and 0 <= summary["all_acc@cfg3"] <= 1
    assert len(_metrics(run)) == 3
    pipe = load_pipeline(run / "pipeline", "cpu")
    assert pipe.eps(torch.zeros(1, 3, 32, 32), 10, pipe.encode_prompts([""])).shape == (1, 3, 32, 32)
    # eval RUN writes only inside the run folder, merged into eval.json with the checkpoint's step
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    before = _files(tmp_path, skip=run)
    report = eval_mod.main([str(run), "--smoke", "--threads", "1", "--quiet"])
    assert _files(tmp_path, skip=run) == before
    merged = json.loads((run / "eval.json").read_text())
    assert set(merged) >= {"train", "eval"} and merged["eval"]["checkpoint"]["step"] == 3
    assert set(report) >= {"text_to_image", "inversion", "inpainting", "super_resolution", "editing"}
    assert report["inpainting"]["replacement (no resampling)"]["known_max_abs_err"] < 1e-5
    assert (run / "grid_editing.png").is_file()
    # a run that died at step 3 (after its step-2 checkpoint), resumed, equals the uninterrupted run
    with pytest.raises(SystemExit):
        train.main([*SMOKE, "--out", str(tmp_path / "short"), NO_EVAL, "nan_at_step=3"])
    (short,) = (tmp_path / "short").iterdir()
    train.main(["--resume", str(short), "--threads", "1", "--quiet", "nan_at_step=0"])
    assert _metrics(short) == _metrics(run)  # the eval samples come after training: same metrics


def test_same_seed_same_metrics(tmp_path):
    a = train.main([*SMOKE, "--out", str(tmp_path / "a"), NO_EVAL])
    b = train.main([*SMOKE, "--out", str(tmp_path / "b"), NO_EVAL])
    assert _metrics(a) == _metrics(b)


def test_nan_loss_stops_the_run_before_saving_it(tmp_path, capsys):
    with pytest.raises(SystemExit) as err:
        train.main([*SMOKE, "--out", str(tmp_path), NO_EVAL, "ckpt_every=1", "nan_at_step=3"])
    assert err.value.code == 3
    msg = capsys.readouterr().err
    assert "step 3" in msg and "loss" in msg
    assert non_finite_tensors(tmp_path) == []  # the sets of steps 1-2 exist and are finite


def test_unused_data_root_is_refused_before_any_folder(tmp_path, capsys):
    with pytest.raises(SystemExit) as err:
        train.main([*SMOKE, "--out", str(tmp_path / "runs"), "--data-root", str(tmp_path), NO_EVAL])
    assert err.value.code == 2 and "dataset=folder" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_bad_inputs(tmp_path):
    with pytest.raises(FileNotFoundError, match="unet/"):
        load_pipeline(tmp_path, "cpu")
    with pytest.raises(SystemExit):
        train.main([*SMOKE, "--out", str(tmp_path), NO_EVAL, "no_such_key=1"])
    with pytest.raises(SystemExit):  # a folder dataset without its metadata.jsonl: refused before the run
        train.main([*SMOKE, "--out", str(tmp_path), "--data-root", str(tmp_path / "missing"), NO_EVAL,
                    "dataset=folder"])
    from conddiff.classifier import AttributeClassifier
    with pytest.raises(FileNotFoundError, match="train_judge"):
        AttributeClassifier.load(tmp_path)
