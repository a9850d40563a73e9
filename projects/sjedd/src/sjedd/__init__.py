"""SJEDD: semantics-oriented multitask deepfake detection by joint image-text embedding."""
