"""Evaluate a run folder (the code is in src/hwverify/eval.py). `uv run eval.py --help` lists every option."""

from hwverify.eval import main

if __name__ == "__main__":
    main()
