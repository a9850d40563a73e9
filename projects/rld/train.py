"""Train a student by RLD or a logit-distillation baseline (the code is in src/rld/train.py).
`uv run train.py --help` lists every option and config field with its default."""

from rld.train import main

if __name__ == "__main__":
    main()
