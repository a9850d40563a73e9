"""Evaluate a SJEDD run folder: frame/video AUC per test split, per-label predictions and an explanation figure.

    uv run eval.py runs/<run>                          # the offline test splits, regenerated from the run's config
    uv run eval.py runs/<run> --data-root /data/lists  # the list-file test sets named by test_lists (dataset=lists)

Writes only inside the run folder: ``eval.json["eval"]`` (merged; what train.py wrote is kept), ``predictions.csv``
(every frame's ten marginals) and ``explanations.png``.
"""

from __future__ import annotations

import csv

import numpy as np

from shared.runs import UsageError, build_eval_parser, entrypoint, open_run
from sjedd.config import Config
from sjedd.evaluate import evaluate_splits, headline, predict
from sjedd.labels import NODE_NAMES
from sjedd.training import build_model, load_data


@entrypoint
def main(argv: list[str] | None = None) -> dict:
    parser = build_eval_parser(__doc__.split("\n")[0])
    parser.add_argument("--data-root", default=None, help="list-file dataset root (default: the run's data)")
    ev = open_run(Config, argv, parser=parser)
    cfg = ev.cfg
    if ev.args.data_root is not None:
        if cfg.dataset != "lists":
            raise UsageError(f"--data-root {ev.args.data_root} is not read by this run: it trained on the offline "
                             "faces (dataset=faces_synth); only a dataset=lists run evaluates list files")
        cfg.data_root = ev.args.data_root
    model = build_model(cfg).to(ev.device)
    ev.load({"model": model})

    tests = {k: v for k, v in load_data(cfg).items() if k != "train"}
    quiet = ev.args.quiet
    results = evaluate_splits(model, tests, cfg.method, ev.device, cfg.batch_size, quiet=quiet)

    with open(ev.run.path / "predictions.csv", "w", newline="") as fh:  # every frame's per-label prediction
        writer = csv.writer(fh)
        columns = NODE_NAMES if cfg.method != "binary" else ("fake",)
        writer.writerow(["split", "index", "class", "video", *columns])
        for name, data in tests.items():
            probs = predict(model, data, cfg.method, ev.device, cfg.batch_size)
            for i in range(len(data)):
                writer.writerow([name, i, data.classes[i], int(data.videos[i]), *np.round(probs[i], 4)])
            if cfg.method != "binary" and name == next(iter(tests)):
                from sjedd.figures import explanation_grid

                step = max(1, len(data) // 8)  # one frame from across the split, so every class shows up
                pick = np.arange(0, len(data), step)[:8]
                explanation_grid(data.images[pick].numpy(), probs[pick], [data.classes[i] for i in pick],
                                 ev.run.path / "explanations.png")
    ev.save(results)
    ev.log(f"eval of {ev.run.path}:\n{headline(results)}\nwrote eval.json (section 'eval') and predictions.csv")
    return results
