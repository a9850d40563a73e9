"""Meta-train HeTRoM and MAML (the code is in src/hetrom/train.py). `uv run train.py --help` lists every option."""

from hetrom.train import main

if __name__ == "__main__":
    main()
