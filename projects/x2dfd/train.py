"""Train X²-DFD (the code is in src/x2dfd/train.py). `uv run train.py --help` lists every option."""

from x2dfd.train import main

if __name__ == "__main__":
    main()
