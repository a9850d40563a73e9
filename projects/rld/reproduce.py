"""Reproduce the CPU-scale claim, RLD vs KD/DKD/LA/LR/RC/CE (the code is in src/rld/reproduce.py).
`uv run reproduce.py --help` lists the options."""

from rld.reproduce import main

if __name__ == "__main__":
    main()
