"""The closed-vocabulary tokenizer and the small CLIP text encoder of the shapes-world base model.

The tokenizer is a word-level ``tokenizers`` model over :data:`shared.data.shapes_world.VOCABULARY` wrapped in a
``transformers.PreTrainedTokenizerFast`` (works offline, saved with ``save_pretrained``). Its special tokens
(``<pad>`` 0, ``<bos>`` 1, ``<eos>`` 2, ``<unk>`` 3) live inside the small vocabulary and the text encoder's
config uses the same ids (the ``CLIPTextConfig`` defaults 49406 / 49407 would point outside it).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from shared.data.shapes_world import VOCABULARY

SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>", "<unk>")


@dataclass
class TextConfig:
    """Size of the text encoder (a transformers ``CLIPTextModel``)."""

    hidden_size: int = 64
    layers: int = 2
    heads: int = 4
    max_length: int = 32


def build_tokenizer(max_length: int = 32):
    """Word-level tokenizer: lower-cases, splits on whitespace, wraps the words in <bos> ... <eos>."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS + VOCABULARY)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A <eos>", special_tokens=[("<bos>", vocab["<bos>"]), ("<eos>", vocab["<eos>"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>",
        model_max_length=max_length,
    )


def build_text_encoder(cfg: TextConfig, tokenizer):
    """A small randomly initialised ``CLIPTextModel`` (causal transformer, as Stable Diffusion's)."""
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=cfg.hidden_size, intermediate_size=2 * cfg.hidden_size,
        num_hidden_layers=cfg.layers, num_attention_heads=cfg.heads, max_position_embeddings=cfg.max_length,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, projection_dim=cfg.hidden_size,
    )
    return CLIPTextModel(config)


def tokenize(tokenizer, prompts: list[str], device: torch.device | str = "cpu") -> torch.Tensor:
    """Token ids (B, L) padded to the tokenizer's ``model_max_length``; a too-long prompt is an error."""
    out = tokenizer(list(prompts), padding="max_length", max_length=tokenizer.model_max_length, truncation=False,
                    return_tensors="pt")
    ids = out.input_ids
    if ids.shape[1] > tokenizer.model_max_length:
        raise ValueError(f"a prompt has {ids.shape[1]} tokens; the text encoder takes at most "
                         f"{tokenizer.model_max_length}")
    return ids.to(device)


@torch.no_grad()
def encode_prompts(text_encoder, tokenizer, prompts: list[str]) -> torch.Tensor:
    """Per-token embeddings (B, L, D) the UNet cross-attends to (the last hidden state, as Stable Diffusion)."""
    device = next(text_encoder.parameters()).device
    return text_encoder(tokenize(tokenizer, prompts, device))[0]
