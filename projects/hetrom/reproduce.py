"""Reproduce the claims at CPU scale (the code is :mod:`hetrom.reproduce`): ``uv run reproduce.py --help``."""

from hetrom.reproduce import main

if __name__ == "__main__":
    main()
