"""Reproduce the CPU-scale claim (the code is in src/multiedits/reproduce.py). `uv run reproduce.py --help`."""

from multiedits.reproduce import main

if __name__ == "__main__":
    main()
