"""Reproduce the CPU-scale X²-DFD ablation over 5 seeds (the code is in src/x2dfd/reproduce.py)."""

from x2dfd.reproduce import main

if __name__ == "__main__":
    main()
