"""Evaluate a run, or localise a folder of images (the code is in src/definet/eval.py); `uv run eval.py --help`."""

from definet.eval import main

if __name__ == "__main__":
    main()
