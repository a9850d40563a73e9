"""Evaluate a run folder of train.py (the code is in src/sfd/eval.py). `uv run eval.py --help` lists the options."""

from sfd.eval import main

if __name__ == "__main__":
    main()
