"""Evaluate a run folder (the code is in src/hetrom/eval.py). `uv run eval.py --help` lists every option."""

from hetrom.eval import main

if __name__ == "__main__":
    main()
