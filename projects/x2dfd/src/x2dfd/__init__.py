"""X2-DFD: explainable and extendable deepfake detection with a multimodal LLM."""
