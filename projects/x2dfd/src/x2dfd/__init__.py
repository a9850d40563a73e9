"""X²-DFD: explainable and extendable deepfake detection with a multimodal LLM (arXiv 2410.06126).

Modules: :mod:`x2dfd.prompts` (official strings), :mod:`x2dfd.mllm` (LLaVA wrapper, LoRA),
:mod:`x2dfd.mfa` (feature ranking), :mod:`x2dfd.sfs` (explainable fine-tuning set), :mod:`x2dfd.wfs`
(blending expert and its injection), :mod:`x2dfd.data` (offline and DeepfakeBench data),
:mod:`x2dfd.pipeline` (the stages and evaluation), :mod:`x2dfd.config` (typed config).
"""
