"""Pretrain the tiny ViT CLIP (the code is in src/sjedd/pretrain.py). `uv run pretrain.py --help`."""

from sjedd.pretrain import main

if __name__ == "__main__":
    main()
