"""Train (or reuse) an EDM teacher, distil it with SFD, print the comparison table (the code is in
src/sfd/train.py). `uv run train.py --help` lists every option and config field with its default."""

from sfd.train import main

if __name__ == "__main__":
    main()
