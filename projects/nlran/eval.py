"""Evaluate a run folder (the code is in src/nlran/eval.py). `uv run eval.py --help` lists every option."""

from nlran.eval import main

if __name__ == "__main__":
    main()
