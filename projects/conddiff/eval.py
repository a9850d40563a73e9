"""Evaluate a base model on the survey's applications (the code is in src/conddiff/eval.py). `uv run eval.py --help`."""

from conddiff.eval import main

if __name__ == "__main__":
    main()
