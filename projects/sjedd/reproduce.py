"""Reproduce the CPU-scale claim (the code is in src/sjedd/reproduce.py). `uv run reproduce.py --help`."""

from sjedd.reproduce import main

if __name__ == "__main__":
    main()
