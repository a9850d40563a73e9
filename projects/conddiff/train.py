"""Train the text-to-image base model (the code is in src/conddiff/train.py). `uv run train.py --help` lists all."""

from conddiff.train import main

if __name__ == "__main__":
    main()
