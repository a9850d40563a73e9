"""Datasets, metrics and run helpers shared by the paper projects."""
