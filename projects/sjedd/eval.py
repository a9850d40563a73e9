"""Evaluate a SJEDD run folder (the code is in src/sjedd/eval.py). `uv run eval.py --help` lists every option."""

from sjedd.eval import main

if __name__ == "__main__":
    main()
