"""Train NL-RAN or a baseline (the code is in src/nlran/train.py). `uv run train.py --help` lists every option."""

from nlran.train import main

if __name__ == "__main__":
    main()
