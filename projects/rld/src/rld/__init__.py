"""Refined Logit Distillation (RLD) and the logit-distillation baselines."""
