"""Train DeFI-Net or the U-Net baseline (the code is in src/definet/train.py); `uv run train.py --help`."""

from definet.train import main

if __name__ == "__main__":
    main()
