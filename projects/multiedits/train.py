"""Fine-tune the base model, then an editing check (the code is in src/multiedits/train.py). `--help` lists all."""

from multiedits.train import main

if __name__ == "__main__":
    main()
