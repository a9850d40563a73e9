"""Reproduce the CPU-scale claim (the code is in src/nlran/reproduce.py). `uv run reproduce.py --help` lists options."""

from nlran.reproduce import main

if __name__ == "__main__":
    main()
