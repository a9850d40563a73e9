"""shared.runs: config parsing, run folders, checkpoints and resume."""

import dataclasses
import json
import random
from typing import Literal

import numpy as np
import pytest
import torch

from shared.runs import RunDir, apply_overrides, load_modules, parse_args, seed_everything, select_device


@dataclasses.dataclass
class Optim:
    lr: float = 0.05
    betas: tuple[float, float] = (0.9, 0.999)


@dataclasses.dataclass
class Cfg:
    seed: int = 0
    device: str = "auto"
    data_root: str | None = None
    epochs: int = 240
    method: Literal["kd", "rld"] = "rld"
    use_bn: bool = True
    widths: tuple[int, ...] = (16, 32)
    optim: Optim = dataclasses.field(default_factory=Optim)


def test_parse_args_precedence(tmp_path):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("epochs: 10\noptim:\n  lr: 0.1\n")
    cfg, args = parse_args(Cfg, ["--config", str(cfg_file), "--seed", "3", "--device", "cpu", "optim.lr=0.2",
                                 "widths=[8, 8, 8]", "use_bn=false", "method=kd"])
    assert cfg.epochs == 10 and cfg.optim.lr == 0.2 and cfg.seed == 3 and cfg.device == "cpu"
    assert cfg.widths == (8, 8, 8) and cfg.use_bn is False and cfg.method == "kd"
    assert args.seed == 3 and args.out.name == "runs"
    smoke, args = parse_args(Cfg, ["--smoke", "epochs=5"], smoke={"epochs": 1, "widths": [4]})
    assert smoke.epochs == 5 and smoke.widths == (4,) and args.smoke


@pytest.mark.parametrize("bad, message", [
    (["nosuch=1"], "unknown config key 'nosuch'"),
    (["epochs=ten"], "expected an integer"),
    (["method=dkd"], "not one of"),
    (["use_bn=maybe"], "expected a boolean"),
    (["epochs"], "key=value"),
])
def test_parse_args_rejects_bad_overrides(bad, message, capsys):
    with pytest.raises(SystemExit):
        parse_args(Cfg, bad)
    assert message in capsys.readouterr().err


def test_help_lists_fields(capsys):
    with pytest.raises(SystemExit):
        parse_args(Cfg, ["--help"])
    out = capsys.readouterr().out
    assert "optim.lr=0.05" in out and "--data-root" in out and "--resume" in out


def test_apply_overrides_none_and_nested():
    cfg = apply_overrides(Cfg(), {"data_root": "none", "optim": {"betas": [0.5, 0.6]}})
    assert cfg.data_root is None and cfg.optim.betas == (0.5, 0.6)
    with pytest.raises(ValueError, match="expected 2 values"):
        apply_overrides(Cfg(), {"optim.betas": [0.5]})


def test_select_device_and_seed():
    assert select_device("cpu").type == "cpu"
    assert select_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(ValueError, match="unknown device"):
        select_device("tpu")
    seed_everything(5)
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    seed_everything(5)
    assert a == (random.random(), np.random.rand(), torch.rand(1).item())
    with pytest.raises(ValueError):
        seed_everything(-1)


def test_run_dir_files(tmp_path):
    run = RunDir.create(tmp_path, "demo")
    assert run.path.name.endswith("-demo") and (run.path / "checkpoints").is_dir()
    assert RunDir.create(tmp_path, "demo").path != run.path  # unique
    run.write_config(Cfg(epochs=3))
    assert run.read_config(Cfg).epochs == 3
    assert "torch" in run.read_json("config.json")["meta"]["versions"]
    for step in range(4):
        run.log_metrics(step=step, loss=1.0 / (step + 1))
    run.rewind_metrics(1)
    assert [r["step"] for r in run.read_metrics()] == [0, 1]
    run.log("hello", quiet=True)
    assert "hello" in (run.path / "log.txt").read_text()
    with pytest.raises(FileNotFoundError, match="not a run folder"):
        RunDir.open(tmp_path / "missing")


def _train(model, opt, steps, gen_seed=0):
    for _ in range(steps):
        x = torch.randn(8, 4)  # uses the global RNG, which the checkpoint restores
        loss = (model(x) - x.sum(1, keepdim=True)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_resume_reaches_the_uninterrupted_result(tmp_path):
    def fresh():
        torch.manual_seed(0)
        m = torch.nn.Linear(4, 1)
        return m, torch.optim.Adam(m.parameters(), lr=0.01)

    seed_everything(1)
    ref, ref_opt = fresh()
    seed_everything(1)
    _train(ref, ref_opt, 10)

    run = RunDir.create(tmp_path, "resume")
    seed_everything(1)
    m, opt = fresh()
    seed_everything(1)
    _train(m, opt, 4)
    run.save_checkpoint("last", {"model": m}, optimizers={"opt": opt}, state={"step": 4})
    torch.rand(100)  # the "killed" process moves on
    m2, opt2 = fresh()
    state = run.load_checkpoint("last", {"model": m2}, optimizers={"opt": opt2})
    _train(m2, opt2, 10 - state["step"])
    assert torch.allclose(m2.weight, ref.weight) and torch.allclose(m2.bias, ref.bias)


def test_corrupt_and_missing_checkpoints(tmp_path):
    run = RunDir.create(tmp_path, "c")
    m = torch.nn.Linear(2, 2)
    path = run.save_checkpoint("last", {"model": m})
    with pytest.raises(FileNotFoundError, match="the folder has \\['last'\\]"):
        run.load_checkpoint("best", {"model": m})
    with pytest.raises(ValueError, match="no weights for module 'teacher'"):
        load_modules(path, {"teacher": m})
    with pytest.raises(ValueError, match="does not match"):
        load_modules(path, {"model": torch.nn.Linear(3, 2)})
    (path / "weights.safetensors").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="weights.safetensors does not match its manifest"):
        run.load_checkpoint("last", {"model": m})
    (run.path / "eval.json").write_text("{trunc")
    with pytest.raises(ValueError, match="not valid JSON"):
        run.read_json("eval.json")
    json.loads((path / "state.json").read_text())  # side state untouched by the failures
