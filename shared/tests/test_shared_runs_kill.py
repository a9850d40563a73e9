"""Kill a real training process (SIGKILL) at >= 20 points, inside the checkpoint save window too, resume it each
time, and require exactly the metrics and weights of an uninterrupted run.

The trainer is :mod:`shared.runs.example` (SGD with momentum on batches drawn from the global RNG, a checkpoint set
every step). Children come from a ``forkserver`` that has imported torch once, so each start costs milliseconds;
each child is a separate process killed with SIGKILL by this one. Kill points:

* inside the save window: after the weights, the optimizer/RNG file, the JSON state, the manifest, after the old set
  was moved aside, and after the new set was moved in (``shared.runs.checkpoint._stage``), on a chosen save;
* at random times: as soon as ``metrics.jsonl`` has reached a chosen row, after a random delay of 0-4 ms.
"""

import multiprocessing as mp
import random
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from shared.runs import RunDir
from shared.runs.example import run_and_die

STAGES = ("weights", "side", "state", "manifest", "moved-previous", "moved-new")
STEPS = 60
KILLS = 22


@pytest.fixture(scope="module")
def ctx():
    context = mp.get_context("forkserver")
    context.set_forkserver_preload(["torch", "shared.runs.example"])
    return context


def _rows(run: Path | None) -> int:
    if run is None or not (run / "metrics.jsonl").is_file():
        return 0
    return (run / "metrics.jsonl").read_text().count("\n")


def _launch(ctx, argv, *, stage=None, save_number=1, kill_at_row=None, run=None, rng=None) -> int | None:
    child = ctx.Process(target=run_and_die, args=(argv, stage, save_number))
    child.start()
    if kill_at_row is not None:
        deadline = time.time() + 120
        while child.is_alive() and time.time() < deadline:
            if _rows(run) >= kill_at_row:
                time.sleep(rng.uniform(0.0, 0.004))
                child.kill()
                break
            time.sleep(0.001)
    child.join(120)
    assert child.exitcode is not None, "the training child hung"
    return child.exitcode


def _result(run: Path):
    rows = RunDir(run).read_metrics()
    weights = load_file(run / "checkpoints" / "last" / "weights.safetensors")
    return [(r["step"], r["loss"]) for r in rows], weights, RunDir(run).read_json("eval.json")["train"]


def test_sigkill_anywhere_then_resume_matches_uninterrupted(tmp_path, ctx):
    base = ["--threads", "1", f"steps={STEPS}"]
    assert _launch(ctx, ["--out", str(tmp_path / "ref"), *base]) == 0
    (reference,) = (tmp_path / "ref").iterdir()

    rng = random.Random(0)
    out = tmp_path / "killed"
    run: Path | None = None
    kills, stages_hit = 0, set()
    for i in range(KILLS):
        argv = ["--out", str(out), *base] if run is None else ["--resume", str(run), "--threads", "1"]
        if i % 2 == 0:
            stage = STAGES[(i // 2) % len(STAGES)]
            code = _launch(ctx, argv, stage=stage, save_number=rng.randint(1, 2))
        else:
            stage = None
            code = _launch(ctx, argv, kill_at_row=_rows(run) + rng.randint(1, 2), run=run, rng=rng)
        run = run or next(iter(sorted(out.iterdir())))
        if code == -9:
            kills += 1
            stages_hit.add(stage or "random")
        else:
            assert code == 0, f"launch {i} exited with {code}"
        if _rows(run) >= STEPS - 4:
            break
    assert _launch(ctx, ["--resume", str(run), "--threads", "1"]) == 0
    assert kills >= 20, f"only {kills} kills landed"
    assert stages_hit >= {*STAGES, "random"}

    ref_rows, ref_weights, ref_train = _result(reference)
    rows, weights, train = _result(run)
    assert rows == ref_rows  # every step's loss, bit for bit, no step twice
    assert weights.keys() == ref_weights.keys()
    assert all(torch.equal(weights[k], ref_weights[k]) for k in weights)
    assert train == ref_train
    assert RunDir(run).status()["state"] == "finished"
