"""Train the attribute judges (the code is in src/conddiff/train_judge.py). `uv run train_judge.py --help`."""

from conddiff.train_judge import main

if __name__ == "__main__":
    main()
