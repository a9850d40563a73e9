"""The fine-tuned VLM verifier: PaliGemma + LoRA answering "yes" / "no" (+ an optional explanation).

VLM-HV fine-tunes PaliGemma with LoRA on a small curated set; the PDF's details (checkpoint, rank, targets,
prompt, how two images are fed) are not public, so the choices here are ours (README, Deviations):

* **Two images in one.** PaliGemma-1 takes one image, so the Known sample goes on top and the Questioned
  sample below, each squashed to (S/2) x S -- close to the natural aspect of a word crop -- in one S x S
  image (:func:`compose_pair`). S = 224 for ``google/paligemma-3b-pt-224``.
* **Prompt / target.** Prefix ``answer en same writer?`` (PaliGemma's task-prefix style), suffix ``yes`` or
  ``no``, optionally followed by an explanation; the loss covers the suffix only (PaliGemma's prefix-LM:
  bidirectional attention on image + prefix, causal on the suffix, via ``token_type_ids``).
* **Score.** logit("yes") - logit("no") at the first answer position gives a same-writer score for AUC/EER;
  the decision is the greedy answer parsed with the official parser, and the rest of the generated text is
  kept as the explanation.
* **Offline.** Without a checkpoint, :func:`tiny_paligemma` builds a small SigLIP + Gemma from config and a
  closed-vocabulary word-level tokenizer built in code (its bos/eos/pad ids are tokens it emits).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (
    GemmaConfig,
    PaliGemmaConfig,
    PaliGemmaForConditionalGeneration,
    PaliGemmaProcessor,
    PreTrainedTokenizerFast,
    SiglipImageProcessor,
    SiglipVisionConfig,
)

from hwverify.config import VLMConfig
from hwverify.cot import parse_decision

SPECIAL_TOKENS = ("<pad>", "<eos>", "<bos>", "<unk>", "<image>")
FEATURES = {  # style key -> the words an explanation uses for it (features a document examiner names)
    "font_a": "shape of a", "font_n": "formation of n", "font_d": "shape of d", "italic": "letter style",
    "thickness": "stroke width", "slant": "slant", "spacing": "letter spacing", "join": "connecting strokes",
    "exit_stroke": "exit stroke of d",
}
WORDS = ("answer", "en", "same", "writer?", "yes", "no", "differs", "differ", "consistent", "letters", "and",
         "pen", ":", ",", "of", "a", "n", "d", "shape", "formation", "letter", "style", "stroke", "width", "slant",
         "spacing", "connecting", "strokes", "exit")


def word_tokenizer(extra_words: tuple[str, ...] = ()) -> PreTrainedTokenizerFast:
    """A closed-vocabulary word-level tokenizer (whitespace split) with PaliGemma's special tokens."""
    vocab = {w: i for i, w in enumerate(dict.fromkeys((*SPECIAL_TOKENS, *WORDS, *extra_words)))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>",
                                   unk_token="<unk>")


def tiny_processor(image_size: int, patch: int, extra_words: tuple[str, ...] = ()) -> PaliGemmaProcessor:
    """A PaliGemma processor built offline: SigLIP image processor (mean = std = 0.5) + word tokenizer."""
    image_processor = SiglipImageProcessor(size={"height": image_size, "width": image_size},
                                           image_mean=[0.5] * 3, image_std=[0.5] * 3, do_rescale=False)
    image_processor.image_seq_length = (image_size // patch) ** 2  # saved with the processor, read by __init__
    return PaliGemmaProcessor(image_processor=image_processor, tokenizer=word_tokenizer(extra_words))


def tiny_paligemma(processor: PaliGemmaProcessor, cfg: VLMConfig) -> PaliGemmaForConditionalGeneration:
    """A small PaliGemma (SigLIP vision + Gemma text) from config, sized by ``cfg.tiny_*``, random weights."""
    tok = processor.tokenizer
    h = cfg.tiny_hidden
    config = PaliGemmaConfig(
        vision_config=SiglipVisionConfig(hidden_size=h, intermediate_size=2 * h, num_hidden_layers=cfg.tiny_layers,
                                         num_attention_heads=4, image_size=cfg.image_size, patch_size=cfg.tiny_patch),
        text_config=GemmaConfig(vocab_size=len(tok), hidden_size=h, intermediate_size=2 * h,
                                num_hidden_layers=cfg.tiny_layers, num_attention_heads=4, num_key_value_heads=1,
                                head_dim=h // 4, pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                                eos_token_id=tok.eos_token_id),
        image_token_index=tok.convert_tokens_to_ids("<image>"), vocab_size=len(tok), projection_dim=h,
        hidden_size=h)
    model = PaliGemmaForConditionalGeneration(config)
    # The output layer is tied to the (frozen) token embeddings. At the default init (std 0.02) a logit is at
    # most |RMSNorm(h)| * |e| ~ sqrt(h) * 0.02 sqrt(h) ~ 1, so no answer could ever become likely; a pretrained
    # model has large embeddings. Give the random ones std 0.25 (logits up to ~0.25 h).
    torch.nn.init.normal_(model.get_input_embeddings().weight, std=0.25)
    return model


def load_base(cfg: VLMConfig) -> tuple[PaliGemmaForConditionalGeneration, PaliGemmaProcessor]:
    """The base model and processor: a local PaliGemma checkpoint, or the tiny offline one (``pretrained=None``)."""
    if cfg.pretrained is None:
        processor = tiny_processor(cfg.image_size, cfg.tiny_patch)
        return tiny_paligemma(processor, cfg), processor
    try:
        processor = PaliGemmaProcessor.from_pretrained(cfg.pretrained, local_files_only=True)
        model = PaliGemmaForConditionalGeneration.from_pretrained(cfg.pretrained, local_files_only=True)
    except (OSError, ValueError) as err:  # ValueError: huggingface_hub rejects a path that is not a repo id
        raise FileNotFoundError(
            f"PaliGemma weights '{cfg.pretrained}' are not available offline. Download google/paligemma-3b-pt-224 "
            "(gated: accept its licence on the Hugging Face Hub) with `huggingface-cli download "
            "google/paligemma-3b-pt-224 --local-dir PATH` on a machine with network access, then pass "
            "vlm.pretrained=PATH; or set vlm.pretrained=null for the tiny offline model.") from err
    return model, processor


def add_lora(model: PaliGemmaForConditionalGeneration, cfg: VLMConfig) -> PeftModel:
    """Wrap ``model`` with LoRA adapters (only the adapters train)."""
    targets = cfg.lora_targets if cfg.lora_targets == "all-linear" else [t.strip() for t in cfg.lora_targets.split(",")]
    lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout, target_modules=targets)
    return get_peft_model(model, lora)


def compose_pair(known: np.ndarray, questioned: np.ndarray, size: int) -> np.ndarray:
    """Known on top, Questioned below, each squashed to (size/2) x size: float32 (size, size, 3) in [0, 1]."""
    half = size // 2
    top = cv2.resize(np.asarray(known, np.float32), (size, half), interpolation=cv2.INTER_AREA)
    bottom = cv2.resize(np.asarray(questioned, np.float32), (size, size - half), interpolation=cv2.INTER_AREA)
    return np.repeat(np.concatenate([top, bottom])[..., None], 3, axis=2)


def explanation(style1: dict, style2: dict) -> str:
    """A feature-by-feature comparison of two synthetic writers' styles (ground truth of the generator),
    in the structure of the paper's example explanation ("shape of a", "formation of n", ...)."""
    differs = []
    for key, words in FEATURES.items():
        a, b = style1[key], style2[key]
        far = abs(float(a) - float(b)) > {"thickness": 1.5, "slant": 0.2, "spacing": 0.2}.get(key, 0.0)
        if far:
            differs.append(words)
    if not differs:
        return "consistent letters"
    return ": " + " , ".join(f"{w} differs" for w in differs[:3])


def answer_text(label: int, style1: dict | None = None, style2: dict | None = None) -> str:
    """The target suffix: "yes"/"no", followed by the explanation when styles are given."""
    word = "yes" if label else "no"
    if style1 is None:
        return word
    return f"{word} {explanation(style1, style2)}" if not label else f"{word} : consistent letters slant and pen"


class VLMVerifier:
    """A (LoRA-wrapped) PaliGemma and its processor, with the batch building, scoring and answering of VLM-HV."""

    def __init__(self, model, processor: PaliGemmaProcessor, cfg: VLMConfig, device: torch.device):
        self.model, self.processor, self.cfg, self.device = model.to(device), processor, cfg, device
        tok = processor.tokenizer
        self.yes_id = tok.convert_tokens_to_ids("yes")
        self.no_id = tok.convert_tokens_to_ids("no")
        if tok.unk_token_id in (self.yes_id, self.no_id):
            raise ValueError("the tokenizer has no single token for 'yes' / 'no'")

    def batch(self, images: np.ndarray, pairs: np.ndarray, suffixes: list[str] | None = None) -> dict:
        """Processor inputs for ``pairs`` (rows i, j, ...); with ``suffixes`` also ``labels`` (prefix = -100)."""
        pictures = [compose_pair(images[i], images[j], self.cfg.image_size) for i, j in pairs[:, :2]]
        prompts = ["<image>" + self.cfg.prompt] * len(pictures)
        inputs = self.processor(images=pictures, text=prompts, suffix=suffixes, return_tensors="pt",
                                padding="longest")
        return {k: v.to(self.device) for k, v in inputs.items()}

    def loss(self, images: np.ndarray, pairs: np.ndarray, suffixes: list[str]) -> torch.Tensor:
        """Next-token cross-entropy on the answer (suffix) tokens only."""
        return self.model(**self.batch(images, pairs, suffixes)).loss

    @torch.no_grad()
    def scores(self, images: np.ndarray, pairs: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """Same-writer score sigmoid(logit_yes - logit_no) at the first answer position."""
        self.model.eval()
        out = []
        for k in range(0, len(pairs), batch_size):
            inputs = self.batch(images, pairs[k:k + batch_size])
            logits = self.model(**inputs).logits[:, -1]
            out.append(torch.sigmoid(logits[:, self.yes_id] - logits[:, self.no_id]).float().cpu())
        return torch.cat(out).numpy()

    @torch.no_grad()
    def answer(self, images: np.ndarray, pairs: np.ndarray, batch_size: int = 64) -> list[dict[str, str]]:
        """Greedy answers: the generated text, its parsed decision (official parser) and the explanation."""
        self.model.eval()
        rows = []
        for k in range(0, len(pairs), batch_size):
            inputs = self.batch(images, pairs[k:k + batch_size])
            generated = self.model.generate(**inputs, max_new_tokens=self.cfg.max_new_tokens, do_sample=False)
            texts = self.processor.batch_decode(generated[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
            for text in texts:
                text = text.strip()
                first, _, rest = text.partition(" ")
                rows.append({"text": text, "decision": parse_decision(first), "explanation": rest.strip()})
        return rows

    def save(self, folder: Path) -> None:
        """``save_pretrained`` of the adapters (PEFT) and the processor."""
        self.model.save_pretrained(folder / "adapter")
        self.processor.save_pretrained(folder / "processor")


def save_tiny_base(model: PaliGemmaForConditionalGeneration, folder: Path) -> None:
    """The tiny model has no published weights: save its (random) base before LoRA wraps it."""
    model.save_pretrained(folder / "base")


def load_verifier(folder: Path, cfg: VLMConfig, device: torch.device) -> VLMVerifier:
    """The base model (the configured checkpoint, or the tiny base saved in ``folder``) + saved adapters."""
    if not (folder / "adapter" / "adapter_config.json").is_file():
        raise FileNotFoundError(f"no LoRA adapter in '{folder / 'adapter'}'; expected adapter_config.json and "
                                "adapter_model.safetensors written by train.py --model vlm")
    if cfg.pretrained is None:
        base = PaliGemmaForConditionalGeneration.from_pretrained(folder / "base")
        processor = PaliGemmaProcessor.from_pretrained(folder / "processor")
    else:
        base, processor = load_base(cfg)
    model = PeftModel.from_pretrained(base, folder / "adapter")
    return VLMVerifier(model, processor, cfg, device)


class LoraState:
    """The LoRA adapters of a PEFT model as a ``state_dict`` / ``load_state_dict`` pair, so that run-folder
    checkpoints hold only the trained parameters (never the multi-GB base)."""

    def __init__(self, model: PeftModel):
        self.model = model

    def state_dict(self) -> dict[str, torch.Tensor]:
        from peft import get_peft_model_state_dict

        return get_peft_model_state_dict(self.model)

    def load_state_dict(self, state: dict[str, torch.Tensor], strict: bool = True) -> None:
        from peft import set_peft_model_state_dict

        result = set_peft_model_state_dict(self.model, state)
        unexpected = getattr(result, "unexpected_keys", [])
        if strict and unexpected:
            raise RuntimeError(f"unexpected LoRA keys {unexpected[:5]}")
