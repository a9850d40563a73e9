"""Evaluate a trained verifier on its run's writer-disjoint test pairs.

    uv run eval.py runs/<run>                  # ResNet (best checkpoint) or VLM (adapters), from config.json
    uv run eval.py runs/<run> --max-pairs 500  # a subset

Writes ``<run>/eval.json`` (accuracy, precision, recall, F1 with positive = same writer, ROC-AUC, EER; for the
VLM also the parsed generated decisions under both accountings of "Unknown" and example explanations) plus
``roc.png`` and ``pairs.png``.
"""

from __future__ import annotations

import argparse
import sys

from hwverify.evaluate import evaluate_run
from shared.runs import select_device


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="run folder written by train.py")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    parser.add_argument("--max-pairs", type=int, default=None, help="evaluate an even subset of the test pairs")
    parser.add_argument("--answer-pairs", type=int, default=400, help="VLM: test pairs to generate answers for")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    out = evaluate_run(args.run, select_device(args.device), max_pairs=args.max_pairs, answer_pairs=args.answer_pairs)
    t = out["test"]
    print(f"{out['model']} on {t['n']} test pairs: accuracy {t['accuracy']:.3f}  precision {t['precision']:.3f}  "
          f"recall {t['recall']:.3f}  F1 {t['f1']:.3f}  AUC {t['auc']:.3f}  EER {t['eer']:.3f}")
    for accounting, d in out.get("decisions", {}).items():
        print(f"  generated decisions ({accounting} Unknown): accuracy {d.get('accuracy', float('nan')):.3f} "
              f"on {d['n']} of {d['n_total']} ({d['n_unknown']} Unknown, {d['n_both']} Both)")
    for ex in out.get("examples", [])[:4]:
        print(f"  {ex['known']} vs {ex['questioned']} ({ex['label']}): {ex['text']!r}")
    print(f"wrote {args.run}/eval.json")
    return out


if __name__ == "__main__":
    main()
