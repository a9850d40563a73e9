"""Vision-language models and a ResNet-18 baseline for handwriting verification."""
