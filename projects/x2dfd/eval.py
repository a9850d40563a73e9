"""Evaluate an X²-DFD run (the code is in src/x2dfd/eval.py). `uv run eval.py --help` lists every option."""

from x2dfd.eval import main

if __name__ == "__main__":
    main()
