"""Evaluate a trained verifier on its run's writer-disjoint test pairs.

    uv run eval.py runs/<run>                  # ResNet or VLM, from the run's config.json (checkpoint set: final)
    uv run eval.py runs/<run> --max-pairs 500  # a subset

Merges into ``<run>/eval.json["eval"]``: accuracy (with a 95 % writer-bootstrap interval), precision, recall, F1
(positive = same writer), ROC-AUC, EER; for the VLM also the parsed generated decisions under both accountings
of "Unknown" and example explanations. Writes ``roc.png`` and ``pairs.png`` into the run folder.
"""

from __future__ import annotations

from hwverify.config import Config
from hwverify.evaluate import evaluate_run
from shared.runs import build_eval_parser, entrypoint, open_run


@entrypoint
def main(argv: list[str] | None = None) -> dict:
    parser = build_eval_parser(__doc__)
    parser.set_defaults(checkpoint="final")
    parser.add_argument("--max-pairs", type=int, default=None, help="evaluate an even subset of the test pairs")
    parser.add_argument("--answer-pairs", type=int, default=400, help="VLM: test pairs to generate answers for")
    parser.add_argument("--no-figures", action="store_true", help="skip roc.png / pairs.png")
    ev = open_run(Config, argv, parser=parser)
    out = evaluate_run(ev, max_pairs=ev.args.max_pairs, answer_pairs=ev.args.answer_pairs,
                       figures=not ev.args.no_figures)
    path = ev.save(out)
    t = out["test"]
    low, high = t["accuracy_ci95"]
    ev.log(f"{out['model']} on {t['n']} test pairs: accuracy {t['accuracy']:.3f} [{low:.3f}, {high:.3f}]  "
           f"precision {t['precision']:.3f}  recall {t['recall']:.3f}  F1 {t['f1']:.3f}  AUC {t['auc']:.3f}  "
           f"EER {t['eer']:.3f}")
    for accounting, d in out.get("decisions", {}).items():
        ev.log(f"  generated decisions ({accounting} Unknown): accuracy {d.get('accuracy', float('nan')):.3f} "
               f"on {d['n']} of {d['n_total']} ({d['n_unknown']} Unknown, {d['n_both']} Both)")
    for example in out.get("examples", [])[:4]:
        ev.log(f"  {example['known']} vs {example['questioned']} ({example['label']}): {example['text']!r}")
    ev.log(f"wrote {path}")
    return out
