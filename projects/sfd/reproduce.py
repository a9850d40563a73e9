"""Reproduce the SFD claim at CPU scale (the code is in src/sfd/reproduce.py). `uv run reproduce.py --help`
lists the options."""

from sfd.reproduce import main

if __name__ == "__main__":
    main()
