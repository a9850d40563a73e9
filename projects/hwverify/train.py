"""Train a handwriting verifier (the code is in src/hwverify/train.py). `uv run train.py --help` lists every option."""

from hwverify.train import main

if __name__ == "__main__":
    main()
