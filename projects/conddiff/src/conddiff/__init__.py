"""Conditional diffusion toolkit: the survey's six sampling mechanisms."""
