"""Train SJEDD or its baselines (the code is in src/sjedd/train.py). `uv run train.py --help` lists every option."""

from sjedd.train import main

if __name__ == "__main__":
    main()
