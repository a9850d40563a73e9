"""Simple and Fast Distillation (SFD) of diffusion models."""
