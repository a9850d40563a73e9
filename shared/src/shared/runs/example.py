"""The smallest complete trainer on the run machinery: the pattern every project's ``train.py`` follows.

    uv run python -m shared.runs.example                       # trains, prints its run folder
    uv run python -m shared.runs.example --resume runs/<run>   # continues a killed run where it stopped
    uv run python -m shared.runs.example nan_at_step=3         # shows the divergence guard (exit status 3)

It fits a small MLP to a fixed random regression problem with SGD + momentum (so that resuming must restore the
optimizer state and the RNG that draws the batches) and saves a checkpoint set every ``save_every`` steps. The kill
tests (``shared/tests/test_shared_runs_kill.py``) SIGKILL it at random points, inside the save window too, resume it
and compare with an uninterrupted run.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass

import torch
from torch import nn

from shared.runs import checkpoint as _checkpoint
from shared.runs import entrypoint, guard_finite, start


@dataclass
class ExampleConfig:
    steps: int = 40
    lr: float = 0.05
    momentum: float = 0.9
    batch_size: int = 32
    hidden: int = 32
    save_every: int = 1
    nan_at_step: int = 0  # > 0: multiply the loss by NaN at this step (demonstrates the divergence guard)
    seed: int = 0
    device: str = "cpu"


def make_data(n: int = 512, dim: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed regression problem (its own generator: independent of the run's seed)."""
    gen = torch.Generator().manual_seed(1234)
    x = torch.randn(n, dim, generator=gen)
    y = torch.sin(x @ torch.randn(dim, 1, generator=gen))
    return x, y


@entrypoint
def main(argv: list[str] | None = None) -> dict:
    s = start(ExampleConfig, argv, tag="example", smoke={"steps": 5})
    cfg, run = s.cfg, s.run
    x, y = (t.to(s.device) for t in make_data())
    model = nn.Sequential(nn.Linear(x.shape[1], cfg.hidden), nn.Tanh(), nn.Linear(cfg.hidden, 1)).to(s.device)
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum)

    done = 0
    if s.resumed and run.has_checkpoint("last"):
        done = run.load_checkpoint("last", {"model": model}, optimizers={"sgd": optimizer})["step"]
        run.rewind_metrics(done)
        s.log(f"resumed after step {done}")
    for step in range(done + 1, cfg.steps + 1):
        idx = torch.randint(0, len(x), (cfg.batch_size,), device=s.device)
        loss = nn.functional.mse_loss(model(x[idx]), y[idx])
        if step == cfg.nan_at_step:
            loss = loss * float("nan")
        guard_finite(step, loss=loss)
        optimizer.zero_grad()
        loss.backward()
        grad_norm = nn.utils.clip_grad_norm_(model.parameters(), float("inf"))
        guard_finite(step, grad_norm=grad_norm)
        optimizer.step()
        run.log_metrics(step=step, loss=loss.item())
        if step % cfg.save_every == 0 or step == cfg.steps:
            run.save_checkpoint("last", {"model": model}, optimizers={"sgd": optimizer}, state={"step": step})

    with torch.no_grad():
        final = nn.functional.mse_loss(model(x), y).item()
    run.finish({"mse": final, "steps": cfg.steps})
    s.log(f"run folder: {run.path}")
    s.log(f"example: final mse {final:.4f} after {cfg.steps} steps")
    return {"run": str(run.path), "mse": final}


def run_and_die(argv: list[str], stage: str | None = None, save_number: int = 1) -> None:
    """Run :func:`main`, SIGKILLing this process at save-window point ``stage`` of save number ``save_number``.

    Used by the kill tests (through a forkserver, so that each killed child starts without re-importing torch).
    """
    torch.set_num_threads(1)
    _checkpoint.FSYNC = False  # a killed process loses nothing the page cache holds; fsync guards power loss only
    if stage is not None:
        seen = {"saves": 0}

        def die_inside_save(name: str) -> None:
            if name == "weights":
                seen["saves"] += 1
            if name == stage and seen["saves"] == save_number:
                os.kill(os.getpid(), signal.SIGKILL)

        _checkpoint._stage = die_inside_save
    try:
        main(argv)
    except SystemExit:
        pass


if __name__ == "__main__":
    main()
