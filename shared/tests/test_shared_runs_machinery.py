"""shared.runs start/resume/eval rules, atomic checkpoint sets and the divergence guard (in-process)."""

import dataclasses
import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from shared.runs import CheckpointError, DivergenceError, RunDir, UsageError, entrypoint, guard_finite, open_run, start
from shared.runs import checkpoint as ckpt
from shared.runs.example import ExampleConfig
from shared.runs.example import main as example_main


@dataclasses.dataclass
class Cfg:
    dataset: str = "offline"
    data_root: str | None = None
    steps: int = 3
    seed: int = 0
    device: str = "cpu"


def _start(tmp_path, *argv, **kwargs):
    return start(Cfg, ["--out", str(tmp_path / "runs"), "--threads", "1", *argv], tag="t",
                 uses_data_root=lambda c: c.dataset == "real", data_root_hint="dataset=real", **kwargs)


# ---- checkpoint sets ------------------------------------------------------------------------------------
def test_set_layout_and_manifest(tmp_path):
    m = torch.nn.Linear(3, 2)
    path = ckpt.save_set(tmp_path, "last", {"model": m}, state={"step": 7})
    manifest = ckpt.verify_set(path)
    assert manifest["step"] == 7
    assert set(manifest["files"]) == {"weights.safetensors", "side.pt", "state.json"}
    assert torch.equal(load_file(path / "weights.safetensors")["model.weight"], m.weight)


def test_torn_newest_set_falls_back_to_previous(tmp_path):
    run = RunDir.create(tmp_path, "f")
    m = torch.nn.Linear(3, 2)
    run.save_checkpoint("last", {"model": m}, state={"step": 1})
    first = m.weight.detach().clone()
    with torch.no_grad():
        m.weight.add_(1.0)
    # a save killed after the old set was moved aside: only last.prev is complete
    ckpt.save_set(run.checkpoints, "last", {"model": m}, state={"step": 2})
    shutil.copytree(run.checkpoints / "last", run.checkpoints / "last.prev")
    state_json = run.checkpoints / "last.prev" / "state.json"
    state_json.write_text(state_json.read_text().replace('"step": 2', '"step": 1'))
    (run.checkpoints / "last" / "side.pt").write_bytes(b"torn")  # newest torn
    with pytest.raises(CheckpointError, match="torn"):
        ckpt.verify_set(run.checkpoints / "last")
    with pytest.raises(CheckpointError, match="state.json does not match"):  # the edited copy is torn too
        run.load_checkpoint("last", {"model": torch.nn.Linear(3, 2)})
    # a genuine previous set is used, and the fallback is logged
    shutil.rmtree(run.checkpoints / "last.prev")
    ckpt.save_set(run.checkpoints, "prevset", {"model": torch.nn.Linear(3, 2)}, state={"step": 1})
    (run.checkpoints / "prevset").rename(run.checkpoints / "last.prev")
    fresh = torch.nn.Linear(3, 2)
    assert run.load_checkpoint("last", {"model": fresh})["step"] == 1
    assert "using the previous complete set (step 1)" in (run.path / "log.txt").read_text()
    assert not torch.equal(fresh.weight, first + 1)


def test_missing_manifest_is_torn(tmp_path):
    path = ckpt.save_set(tmp_path, "last", {"model": torch.nn.Linear(2, 2)}, state={"step": 1})
    (path / "manifest.json").unlink()
    with pytest.raises(CheckpointError, match="no manifest.json"):
        ckpt.find_set(tmp_path, "last")


def test_nothing_non_finite_is_saved(tmp_path):
    run = RunDir.create(tmp_path, "n")
    m = torch.nn.Linear(2, 2)
    run.save_checkpoint("last", {"model": m}, state={"step": 1})
    with torch.no_grad():
        m.bias[0] = float("nan")
    with pytest.raises(DivergenceError, match="model.bias holds NaN"):
        run.save_checkpoint("last", {"model": m}, state={"step": 2})
    assert ckpt.verify_set(run.checkpoints / "last")["step"] == 1  # the previous set is intact
    with pytest.raises(DivergenceError, match="step 4: metric loss = nan"):
        run.log_metrics(step=4, loss=float("nan"))
    with pytest.raises(DivergenceError, match="step 9: grad_norm = inf"):
        guard_finite(9, loss=torch.tensor(1.0), grad_norm=torch.tensor(float("inf")))


def test_writers_are_part_of_the_set(tmp_path):
    def write(folder):
        folder.mkdir()
        (folder / "config.json").write_text("{}")

    path = ckpt.save_set(tmp_path, "last", {"m": torch.nn.Linear(1, 1)}, writers={"hf": write})
    assert "hf/config.json" in ckpt.verify_set(path)["files"]
    (path / "hf" / "config.json").write_text("{ }")
    with pytest.raises(CheckpointError, match="hf/config.json does not match"):
        ckpt.verify_set(path)


# ---- start ----------------------------------------------------------------------------------------------
def test_default_config_then_flags_then_pairs(tmp_path):
    default = tmp_path / "cpu.yaml"
    default.write_text("steps: 5\nseed: 1\n")
    s = _start(tmp_path, "--seed", "4", "steps=6", default_config=default)
    assert (s.cfg.steps, s.cfg.seed) == (6, 4)
    other = tmp_path / "paper.yaml"
    other.write_text("steps: 50\n")
    assert _start(tmp_path, "--config", str(other), default_config=default).cfg.steps == 50
    assert _start(tmp_path, "--smoke", default_config=default, smoke={"steps": 1}).cfg.steps == 1
    meta = s.run.read_json("config.json")["meta"]
    assert meta["threads"] == 1 and s.run.status()["state"] == "running"
    assert torch.get_num_threads() == 1


@pytest.mark.parametrize(("argv", "message"), [
    (["--data-root", "/somewhere"], "is not read by this configuration"),
    (["dataset=real", "--data-root", "/no/such/root"], "does not exist"),
    (["nosuch=1"], "unknown config key"),
    (["--device", "cuda"] if not torch.cuda.is_available() else ["steps=x"], ""),
])
def test_bad_starts_write_nothing(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        _start(tmp_path, *argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_project_check_runs_before_the_folder(tmp_path, capsys):
    def check(cfg, args):
        raise UsageError("weights missing: put them in ./weights")

    with pytest.raises(SystemExit):
        _start(tmp_path, check=check)
    assert "weights missing" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_resume_uses_saved_config_plus_this_commands_pairs(tmp_path, capsys):
    first = _start(tmp_path, "steps=9", "--seed", "3")
    again = start(Cfg, ["--resume", str(first.run.path), "steps=12", "--threads", "1"], tag="t")
    assert (again.cfg.steps, again.cfg.seed) == (12, 3) and again.resumed and again.run.path == first.run.path
    resumes = again.run.read_json("config.json")["meta"]["resumes"]
    assert resumes[-1]["overrides"] == {"steps": "12"}
    assert again.run.read_config(Cfg).steps == 12
    with pytest.raises(SystemExit):
        start(Cfg, ["--resume", str(first.run.path), "--smoke"], tag="t")
    assert "cannot be combined" in capsys.readouterr().err


# ---- the example trainer end to end, and eval ---------------------------------------------------------------
def test_example_same_seed_same_metrics_and_copied_folder_resumes(tmp_path):
    a = example_main(["--out", str(tmp_path / "a"), "--threads", "1", "steps=6"])
    b = example_main(["--out", str(tmp_path / "b"), "--threads", "1", "steps=6"])
    rows = [RunDir(r["run"]).read_metrics() for r in (a, b)]
    assert [r["loss"] for r in rows[0]] == [r["loss"] for r in rows[1]]
    text = "".join(p.read_text(errors="ignore") for p in RunDir(a["run"]).path.rglob("*.json"))
    assert str(tmp_path) not in text  # no absolute path of the run inside it
    copy = tmp_path / "copy"
    shutil.copytree(a["run"], copy)
    resumed = example_main(["--resume", str(copy), "steps=8", "--threads", "1"])
    assert resumed["run"] == str(copy) and len(RunDir(copy).read_metrics()) == 8
    assert len(RunDir(a["run"]).read_metrics()) == 6  # the original is untouched


def test_example_nan_stops_with_exit_3(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        example_main(["--out", str(tmp_path), "--threads", "1", "nan_at_step=3", "steps=5"])
    assert exit_info.value.code == 3
    assert isinstance(exit_info.value.__cause__, DivergenceError)
    assert "diverged at step 3: loss = nan" in capsys.readouterr().err
    (run,) = tmp_path.iterdir()
    for weights in run.rglob("*.safetensors"):
        assert all(torch.isfinite(t).all() for t in load_file(weights).values())
    assert [r["step"] for r in RunDir(run).read_metrics()] == [1, 2]


def test_eval_rules(tmp_path, capsys):
    result = example_main(["--out", str(tmp_path), "--threads", "1", "steps=4"])
    run = RunDir(result["run"])
    ev = open_run(ExampleConfig, [str(run.path), "--threads", "1"])
    assert ev.checkpoint.step == 4 and ev.run.path == run.path
    ev.save({"acc": 0.5, "undefined": float("nan")})
    merged = run.read_json("eval.json")
    assert merged["train"]["steps"] == 4  # what train.py wrote is kept
    assert merged["eval"]["acc"] == 0.5 and merged["eval"]["undefined"] is None
    assert merged["eval"]["checkpoint"]["step"] == 4 and merged["eval"]["checkpoint"]["folder"] == "checkpoints/last"
    assert open_run(ExampleConfig, ["--run", str(run.path)]).run.path == run.path
    run.set_status("running")
    with pytest.raises(SystemExit):
        open_run(ExampleConfig, [str(run.path)])
    assert "has not finished" in capsys.readouterr().err
    assert open_run(ExampleConfig, [str(run.path), "--allow-partial"]).checkpoint.name == "last"
    with pytest.raises(SystemExit):
        open_run(ExampleConfig, [])
    assert "which run?" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        open_run(ExampleConfig, [str(tmp_path / "nope")])
    assert "not a run folder" in capsys.readouterr().err


def test_entrypoint_exit_codes(capsys):
    @entrypoint
    def bad_checkpoint():
        raise CheckpointError("set 'x' is torn")

    with pytest.raises(SystemExit) as exit_info:
        bad_checkpoint()
    assert exit_info.value.code == 2 and "set 'x' is torn" in capsys.readouterr().err


def test_torn_metrics_tail_is_skipped(tmp_path):
    run = RunDir.create(tmp_path, "m")
    run.log_metrics(step=1, loss=1.0)
    with open(run.path / "metrics.jsonl", "a") as fh:
        fh.write('{"step": 2, "lo')
    assert [r["step"] for r in run.read_metrics()] == [1]
    run.rewind_metrics(1)
    assert json.loads((run.path / "metrics.jsonl").read_text())["step"] == 1


def test_torn_set_without_fallback_is_an_error_not_a_fresh_start(tmp_path):
    run = RunDir.create(tmp_path, "t")
    assert not run.has_checkpoint("last")
    path = run.save_checkpoint("last", {"m": torch.nn.Linear(2, 2)}, state={"step": 1})
    (path / "weights.safetensors").write_bytes(b"torn")
    assert run.has_checkpoint("last")  # resume code then loads, and the load says what is wrong
    with pytest.raises(CheckpointError, match="does not match its manifest"):
        run.load_checkpoint("last", {"m": torch.nn.Linear(2, 2)})


def test_pairs_may_stand_between_flags(tmp_path):
    s = start(Cfg, ["steps=7", "--out", str(tmp_path / "runs"), "seed=2", "--threads", "1"], tag="t")
    assert (s.cfg.steps, s.cfg.seed) == (7, 2)


def test_non_finite_tensors_names_the_bad_tensor(tmp_path):
    from shared.runs import CheckpointMissing, non_finite_tensors

    with pytest.raises(CheckpointMissing, match="nothing to check"):
        non_finite_tensors(tmp_path)
    m = torch.nn.Linear(2, 2)
    ckpt.save_set(tmp_path, "last", {"m": m})
    assert non_finite_tensors(tmp_path) == []
    from safetensors.torch import save_file

    save_file({"w": torch.tensor([1.0, float("inf")]), "n": torch.tensor([3])}, str(tmp_path / "bad.safetensors"))
    assert non_finite_tensors(tmp_path) == [f"{tmp_path / 'bad.safetensors'}:w"]
