"""DeFI-Net: dense feature interaction network for inpainting localization."""
