"""MultiEdits / ParallelEdits: simultaneous multi-aspect text-driven image editing."""
