"""MultiEdits / ParallelEdits (arXiv 2406.00985): multi-aspect text-driven image editing."""
