"""The CPU-scale comparison (code: src/hwverify/reproduce.py). `uv run reproduce.py --help` lists the options."""

from hwverify.reproduce import main

if __name__ == "__main__":
    main()
