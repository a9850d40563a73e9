"""Reproduce the CPU-scale comparison (the code is in src/definet/reproduce.py). `uv run reproduce.py --help`."""

from definet.reproduce import main

if __name__ == "__main__":
    main()
