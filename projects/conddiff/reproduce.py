"""Reproduce the CPU-scale claims (the code is in src/conddiff/reproduce.py). `uv run reproduce.py --help`."""

from conddiff.reproduce import main

if __name__ == "__main__":
    main()
