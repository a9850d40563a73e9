"""Multi-aspect editing benchmark (the code is in src/multiedits/eval.py). `uv run eval.py --help` lists all."""

from multiedits.eval import main

if __name__ == "__main__":
    main()
