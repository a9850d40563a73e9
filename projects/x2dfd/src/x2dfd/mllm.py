"""The MLLM: a ``transformers`` LLaVA (vision tower + mlp2x_gelu projector + Llama), with LoRA from ``peft``.

Two ways to get one:

* :meth:`MLLM.from_pretrained` -- a real LLaVA-1.5 checkpoint in the llava-hf format (local folder or hub id such
  as ``llava-hf/llava-1.5-7b-hf``; nothing is downloaded at run time: put the files in the local HF cache or a
  folder first);
* :meth:`MLLM.tiny` -- a small LLaVA built from a config with a word-level tokenizer built in code from the words the
  pipeline uses, for offline CPU runs and tests. Its vision tower is either the frozen ImageNet EfficientNet-Lite0
  that ships offline (``vision="lite0"``, the default: real pretrained weights, as LLaVA's frozen CLIP tower) or a
  random tiny CLIP ViT (``vision="clip"``, tests).

Scores (``specs/x2dfd.md``, Inference): P(fake) is the softmax over the logits of the words "real" and "fake" at
the answer position, teacher-forced after ``"ASSISTANT: This image is"`` (the official code reads the same two
logits at generation step 3); P(yes) likewise over "Yes"/"No" right after ``"ASSISTANT:"``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from x2dfd.prompts import ANSWER_PREFIX, IMAGE_TOKEN, conversation, human_turn

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IGNORE_INDEX = -100
SPECIAL_TOKENS = ("<pad>", "<s>", "</s>", "<unk>", IMAGE_TOKEN)
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
LORA_TARGETS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
"""LLaVA's ``find_all_linear_names``: every linear layer of the LLM (not the vision tower, projector, lm_head)."""


@dataclass
class TinyLlavaConfig:
    """Sizes of the offline LLaVA (the real one is CLIP ViT-L/14-336 + Vicuna-7B)."""

    vision: str = "lite0"  # "lite0": frozen ImageNet EfficientNet-Lite0 features; "clip": random tiny CLIP ViT
    image_size: int = 64
    patch_size: int = 8  # CLIP only; Lite0 gives a 4 x 4 grid of tokens at 64 px (stride 16)
    vision_hidden: int = 64
    vision_layers: int = 2
    text_hidden: int = 64
    text_layers: int = 2
    heads: int = 4
    init_std: float = 0.1  # weight init of the tiny Llama (HF default 0.02 leaves the frozen lm_head unable to
    # produce confident logits at hidden size 64: |logit| <= 0.02 * hidden; see the README's Deviations)


def torch_dtype(name: str) -> torch.dtype:
    """``"float32"`` / ``"bfloat16"`` / ``"float16"`` -> the torch dtype (real LLaVA weights: bf16 halves memory)."""
    if name not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {name!r}")
    return DTYPES[name]


# ----------------------------------------------------------------------------------------------------------------
# the offline pretrained vision tower: frozen ImageNet EfficientNet-Lite0 features


LITE0_STAGES = (2, 3)
"""Feature maps used: stride 8 (40 channels, average-pooled to stride 16) and stride 16 (112 channels)."""
LITE0_CHANNELS = 40 + 112


@torch.no_grad()
def _lite0_encoder():
    from functools import cache

    @cache
    def load():
        from shared.data.pretrained import efficientnet_lite0

        enc = efficientnet_lite0(pretrained=True, features_only=True, out_indices=LITE0_STAGES).eval()
        for p in enc.parameters():
            p.requires_grad_(False)
        return enc

    return load()


_FEATURE_CACHE: dict[tuple, torch.Tensor] = {}


@torch.no_grad()
def lite0_features(images: np.ndarray, size: int, batch_size: int = 128) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> frozen ImageNet EfficientNet-Lite0 features (N, 152, size/16, size/16), float32 on CPU.

    Stride-8 (40 ch) maps average-pooled to stride 16 and concatenated with the stride-16 (112 ch) maps; inputs
    normalised with the TF-Lite mean = std = 0.5. The encoder is frozen, so results are cached per image array
    (keyed by a hash of its bytes): the pipeline asks for the same frames many times."""
    from shared.data.pretrained import LITE0_MEAN, LITE0_STD

    images = np.ascontiguousarray(images)
    key = (images.shape, size, hashlib.blake2b(images.tobytes(), digest_size=16).hexdigest())
    if key in _FEATURE_CACHE:
        return _FEATURE_CACHE[key]
    enc = _lite0_encoder()
    mean, std = torch.tensor(LITE0_MEAN).view(1, 3, 1, 1), torch.tensor(LITE0_STD).view(1, 3, 1, 1)
    out = []
    for i in range(0, len(images), batch_size):
        x = torch.from_numpy(images[i : i + batch_size]).permute(0, 3, 1, 2).float() / 255.0
        if x.shape[-1] != size or x.shape[-2] != size:
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
        f8, f16 = enc((x - mean) / std)
        out.append(torch.cat([F.avg_pool2d(f8, 2), f16], 1))
    feats = torch.cat(out) if out else torch.zeros(0, LITE0_CHANNELS, size // 16, size // 16)
    if len(_FEATURE_CACHE) > 64:
        _FEATURE_CACHE.clear()
    _FEATURE_CACHE[key] = feats
    return feats


class FeatureTokens(torch.nn.Module):
    """LLaVA's ``vision_tower`` slot for precomputed frozen feature maps: (N, C, h, w) -> h*w tokens of C channels
    (parameter-free layer norm), returned the way ``LlavaModel.get_image_features`` reads a CLIP tower's output
    (``hidden_states[vision_feature_layer]``; use ``vision_feature_layer=-1`` and the ``"full"`` strategy)."""

    def forward(self, pixel_values: torch.Tensor, return_dict: bool = True, **kwargs):
        from transformers.modeling_outputs import BaseModelOutputWithPooling

        tokens = pixel_values.flatten(2).transpose(1, 2)
        tokens = F.layer_norm(tokens, tokens.shape[-1:])
        return BaseModelOutputWithPooling(last_hidden_state=tokens, hidden_states=(tokens,))


# ----------------------------------------------------------------------------------------------------------------
# tokenizer


def _pre_tokenizer():
    from tokenizers import pre_tokenizers

    return pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.Whitespace()])


def build_tokenizer(corpus: Iterable[str]):
    """A word-level ``PreTrainedTokenizerFast`` over the lower-cased words, punctuation and digits of ``corpus``.

    Special tokens: ``<pad>`` 0, ``<s>`` 1 (bos), ``</s>`` 2 (eos), ``<unk>`` 3, ``<image>`` 4. Digits are split one
    per token (as Llama's tokenizer does), so a 3-decimal expert score reads as ``0 . 8 1 2``."""
    from tokenizers import Tokenizer, models, normalizers
    from transformers import PreTrainedTokenizerFast

    pre = _pre_tokenizer()
    words: set[str] = set(str(d) for d in range(10))
    for text in corpus:
        words.update(w for w, _ in pre.pre_tokenize_str(text.lower()) if w != IMAGE_TOKEN)
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for w in sorted(words - set(SPECIAL_TOKENS)):
        vocab[w] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>", additional_special_tokens=[IMAGE_TOKEN])
    return fast


# ----------------------------------------------------------------------------------------------------------------
# the wrapper


class MLLM:
    """A LLaVA model, its tokenizer and image preprocessing, with the scoring and training helpers X²-DFD needs."""

    def __init__(self, model, tokenizer, n_image_tokens: int, image_size: int, image_processor=None,
                 add_bos: bool = True, vision: str = "clip"):
        self.model = model
        self.vision = vision
        self.tokenizer = tokenizer
        self.n_image_tokens = n_image_tokens
        self.image_size = image_size
        self.image_processor = image_processor
        self.add_bos = add_bos
        self.image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)

    # -- construction ------------------------------------------------------------------------------------------
    @classmethod
    def tiny(cls, corpus: Iterable[str], cfg: TinyLlavaConfig | None = None, seed: int = 0) -> MLLM:
        """A randomly initialised small LLaVA over a word-level tokenizer of ``corpus`` (deterministic in seed)."""
        from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

        cfg = cfg or TinyLlavaConfig()
        tok = build_tokenizer(corpus)
        if cfg.vision not in ("lite0", "clip"):
            raise ValueError(f"tiny.vision must be 'lite0' or 'clip', got {cfg.vision!r}")
        lite0 = cfg.vision == "lite0"
        patch = 16 if lite0 else cfg.patch_size
        if cfg.image_size % patch:
            raise ValueError(f"image_size {cfg.image_size} must be a multiple of the patch size / stride {patch}")
        if lite0:  # the CLIP config only sizes the projector's input; the tower is replaced below
            vision_config = CLIPVisionConfig(hidden_size=LITE0_CHANNELS, intermediate_size=8, num_hidden_layers=1,
                                             num_attention_heads=1, image_size=cfg.image_size, patch_size=16)
        else:
            vision_config = CLIPVisionConfig(hidden_size=cfg.vision_hidden, intermediate_size=2 * cfg.vision_hidden,
                                             num_hidden_layers=cfg.vision_layers, num_attention_heads=cfg.heads,
                                             image_size=cfg.image_size, patch_size=cfg.patch_size)
        config = LlavaConfig(
            vision_config=vision_config,
            text_config=LlamaConfig(vocab_size=len(tok), hidden_size=cfg.text_hidden,
                                    intermediate_size=2 * cfg.text_hidden, num_hidden_layers=cfg.text_layers,
                                    num_attention_heads=cfg.heads, num_key_value_heads=cfg.heads,
                                    max_position_embeddings=1024, initializer_range=cfg.init_std,
                                    pad_token_id=tok.pad_token_id,
                                    bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id),
            image_token_index=tok.convert_tokens_to_ids(IMAGE_TOKEN), vision_feature_layer=-1 if lite0 else -2,
            vision_feature_select_strategy="full" if lite0 else "default", projector_hidden_act="gelu",
        )
        config.pad_token_id = tok.pad_token_id
        torch.manual_seed(seed)
        model = LlavaForConditionalGeneration(config)
        if lite0:
            model.model.vision_tower = FeatureTokens()
        model.generation_config.pad_token_id = tok.pad_token_id
        model.generation_config.eos_token_id = tok.eos_token_id
        model.generation_config.bos_token_id = tok.bos_token_id
        return cls(model, tok, (cfg.image_size // patch) ** 2, cfg.image_size, vision=cfg.vision)

    @classmethod
    def from_pretrained(cls, path_or_id: str, dtype: torch.dtype | str = torch.float32) -> MLLM:
        """A real LLaVA-1.5 in llava-hf format from a local folder or the local HF cache (no download)."""
        from transformers import AutoProcessor, LlavaForConditionalGeneration

        dtype = torch_dtype(dtype) if isinstance(dtype, str) else dtype
        try:
            processor = AutoProcessor.from_pretrained(path_or_id, local_files_only=True)
            model = LlavaForConditionalGeneration.from_pretrained(path_or_id, dtype=dtype, local_files_only=True)
        except (OSError, ValueError) as err:
            raise FileNotFoundError(
                f"LLaVA weights '{path_or_id}' not found locally. X²-DFD fine-tunes LLaVA-1.5-7B: put the llava-hf "
                f"checkpoint (e.g. `huggingface-cli download llava-hf/llava-1.5-7b-hf --local-dir "
                f"weights/llava-1.5-7b-hf`) in a folder and pass mllm=<that folder>.") from err
        vision = model.config.vision_config
        n = (vision.image_size // vision.patch_size) ** 2
        return cls(model, processor.tokenizer, n, vision.image_size, processor.image_processor)

    # -- text --------------------------------------------------------------------------------------------------
    def word_id(self, word: str) -> int:
        """The first token id of ``word`` without special tokens (official: index 1 after BOS)."""
        return self.tokenizer(word, add_special_tokens=False).input_ids[0]

    def _ids(self, text: str) -> list[int]:
        ids = self.tokenizer(text, add_special_tokens=False).input_ids
        out = [self.tokenizer.bos_token_id] if self.add_bos else []
        for i in ids:
            out += [i] * self.n_image_tokens if i == self.image_token_id else [i]
        return out

    def encode(self, prompts: Sequence[str], answers: Sequence[str] | None = None, padding: str = "right"):
        """Token ids of ``conversation(prompt[, answer])`` with the single ``<image>`` expanded to the number of
        image tokens, padded; ``labels`` supervise only the answer tokens and the closing ``</s>`` (the prompt
        and padding are ``-100``, as LLaVA's ``preprocess_v1``)."""
        rows, labels = [], []
        for k, prompt in enumerate(prompts):
            ids = self._ids(conversation(prompt))
            if prompt.count(IMAGE_TOKEN) != 1:
                raise ValueError(f"a prompt must hold exactly one {IMAGE_TOKEN}, got: {prompt!r}")
            lab = [IGNORE_INDEX] * len(ids)
            if answers is not None:
                ans = self.tokenizer(" " + answers[k], add_special_tokens=False).input_ids + [
                    self.tokenizer.eos_token_id]
                ids, lab = ids + ans, lab + ans
            rows.append(ids)
            labels.append(lab)
        width = max(len(r) for r in rows)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
        label_t = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for k, (r, lab) in enumerate(zip(rows, labels)):
            sl = slice(0, len(r)) if padding == "right" else slice(width - len(r), width)
            input_ids[k, sl], label_t[k, sl], mask[k, sl] = torch.tensor(r), torch.tensor(lab), 1
        return {"input_ids": input_ids, "attention_mask": mask, "labels": label_t}

    def encode_dialogues(self, dialogues: Sequence[Sequence[tuple[str, str]]]):
        """Multi-turn ``llava_v1`` conversations (LLaVA's instruction data: one image, several exchanges):
        ``"{system} USER: {q1} ASSISTANT: {a1}</s>USER: {q2} ASSISTANT: {a2}</s>..."``; the first question holds
        the ``<image>``; labels supervise every answer and its ``</s>`` (everything else ``-100``)."""
        from x2dfd.prompts import LLAVA_V1_SYSTEM

        rows, labels = [], []
        eos = self.tokenizer.eos_token_id
        for turns in dialogues:
            if not turns or turns[0][0].count(IMAGE_TOKEN) != 1 or any(IMAGE_TOKEN in q for q, _ in turns[1:]):
                raise ValueError(f"the first question (only) must hold one {IMAGE_TOKEN}: {turns!r}")
            ids, lab = [], []
            for k, (q, a) in enumerate(turns):
                head = f"{LLAVA_V1_SYSTEM} USER: {q} ASSISTANT:" if k == 0 else f"USER: {q} ASSISTANT:"
                h = self._ids(head) if k == 0 else self.tokenizer(head, add_special_tokens=False).input_ids
                ans = self.tokenizer(" " + a, add_special_tokens=False).input_ids + [eos]
                ids += h + ans
                lab += [IGNORE_INDEX] * len(h) + ans
            rows.append(ids)
            labels.append(lab)
        width = max(len(r) for r in rows)
        input_ids = torch.full((len(rows), width), self.tokenizer.pad_token_id, dtype=torch.long)
        label_t = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for k, (r, lab) in enumerate(zip(rows, labels)):
            input_ids[k, : len(r)], label_t[k, : len(r)], mask[k, : len(r)] = torch.tensor(r), torch.tensor(lab), 1
        return {"input_ids": input_ids, "attention_mask": mask, "labels": label_t}

    # -- images ------------------------------------------------------------------------------------------------
    def pixel_values(self, images) -> torch.Tensor:
        """uint8 (N, H, W, 3) -> the vision tower's input: (N, 3, S, S) pixels, or for the Lite0 tower its frozen
        (N, 152, S/16, S/16) feature maps. A tensor is taken as already converted (callers that score the same
        frames many times convert once)."""
        if isinstance(images, torch.Tensor):
            return images
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"images must be uint8 (N, H, W, 3), got shape {images.shape}")
        if self.image_processor is not None:
            return self.image_processor(list(images), return_tensors="pt").pixel_values
        if self.vision == "lite0":
            return lite0_features(images, self.image_size)
        x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0
        if x.shape[-1] != self.image_size or x.shape[-2] != self.image_size:
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False)
        return (x - torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)) / torch.tensor(CLIP_STD).view(1, 3, 1, 1)

    def _batches(self, images, batch_size: int):
        """(start, pixel values) per batch; a frozen-feature tower converts the whole set once (cached)."""
        if self.vision == "lite0" and not isinstance(images, torch.Tensor):
            images = self.pixel_values(images)
        for i in range(0, len(images), batch_size):
            yield i, self.pixel_values(images[i : i + batch_size]).to(self.device, self.model.dtype)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # -- scoring -----------------------------------------------------------------------------------------------
    @torch.no_grad()
    def next_token_logits(self, images: np.ndarray, prompts: Sequence[str], suffix: str = "",
                          batch_size: int = 64) -> torch.Tensor:
        """Logits (N, vocab) of the token after ``conversation(prompt)`` + ``suffix`` (teacher forcing)."""
        self.model.eval()
        out = []
        for i, px in self._batches(images, batch_size):
            sub = list(prompts[i : i + batch_size])
            enc = self.encode(sub, [suffix] * len(sub) if suffix else None)
            ids, mask = enc["input_ids"], enc["attention_mask"]
            if suffix:  # drop the closing </s> that encode appended to the "answer"
                last = mask.sum(1) - 1
                mask[torch.arange(len(sub)), last] = 0
                ids[torch.arange(len(sub)), last] = self.tokenizer.pad_token_id
            logits = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                                pixel_values=px).logits
            last = mask.sum(1) - 1
            out.append(logits[torch.arange(len(sub)), last.to(self.device)].float().cpu())
        return torch.cat(out)

    def p_yes(self, images: np.ndarray, question: str, batch_size: int = 64) -> np.ndarray:
        """P(yes) = softmax(logit_Yes, logit_No)[0] at the first answer token (MFA)."""
        logits = self.next_token_logits(images, [human_turn(question)] * len(images), batch_size=batch_size)
        two = logits[:, [self.word_id("Yes"), self.word_id("No")]]
        return torch.softmax(two, 1)[:, 0].double().numpy()

    def p_fake(self, images: np.ndarray, prompt: str | Sequence[str], batch_size: int = 64) -> np.ndarray:
        """P(fake) = softmax(logit_real, logit_fake)[1] after ``"This image is"``; ``prompt`` is the human turn
        (one for all images, or one per image, e.g. with each image's expert score)."""
        prompts = [prompt] * len(images) if isinstance(prompt, str) else list(prompt)
        if len(prompts) != len(images):
            raise ValueError(f"{len(prompts)} prompts for {len(images)} images")
        logits = self.next_token_logits(images, prompts, suffix=ANSWER_PREFIX, batch_size=batch_size)
        two = logits[:, [self.word_id("real"), self.word_id("fake")]]
        return torch.softmax(two, 1)[:, 1].double().numpy()

    @torch.no_grad()
    def generate(self, images: np.ndarray, prompts: Sequence[str], max_new_tokens: int = 64,
                 batch_size: int = 32) -> list[str]:
        """Greedy answers (official annotation: temperature 0, num_beams 1), decoded without special tokens."""
        self.model.eval()
        texts = []
        for i, px in self._batches(images, batch_size):
            sub = list(prompts[i : i + batch_size])
            enc = self.encode(sub, padding="left")
            out = self.model.generate(input_ids=enc["input_ids"].to(self.device),
                                      attention_mask=enc["attention_mask"].to(self.device), pixel_values=px,
                                      max_new_tokens=max_new_tokens, do_sample=False, num_beams=1)
            new = out[:, enc["input_ids"].shape[1]:]
            texts += [t.strip() for t in self.tokenizer.batch_decode(new, skip_special_tokens=True)]
        return texts

    def loss(self, images: np.ndarray, prompts: Sequence[str], answers: Sequence[str]) -> torch.Tensor:
        """Next-token cross-entropy on the answer tokens only (LLaVA SFT loss)."""
        enc = self.encode(prompts, answers)
        px = self.pixel_values(images).to(self.device, self.model.dtype)
        out = self.model(input_ids=enc["input_ids"].to(self.device),
                         attention_mask=enc["attention_mask"].to(self.device), pixel_values=px,
                         labels=enc["labels"].to(self.device))
        return out.loss

    def dialogue_loss(self, images, dialogues: Sequence[Sequence[tuple[str, str]]]) -> torch.Tensor:
        """Cross-entropy on the answer tokens of multi-turn conversations (:meth:`encode_dialogues`)."""
        enc = self.encode_dialogues(dialogues)
        px = self.pixel_values(images).to(self.device, self.model.dtype)
        return self.model(input_ids=enc["input_ids"].to(self.device),
                          attention_mask=enc["attention_mask"].to(self.device), pixel_values=px,
                          labels=enc["labels"].to(self.device)).loss

    # -- LoRA --------------------------------------------------------------------------------------------------
    def add_lora(self, r: int = 16, alpha: int = 32, dropout: float = 0.05) -> None:
        """Wrap the LLM's linear layers with LoRA (peft) and keep the projector fully trainable; everything else
        (vision tower, embeddings, lm_head, base LLM weights) is frozen (LLaVA ``--lora_enable``)."""
        from peft import LoraConfig, get_peft_model

        config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, bias="none", target_modules=LORA_TARGETS)
        self.model = get_peft_model(self.model, config)
        for name, p in self.model.named_parameters():
            if "multi_modal_projector" in name:
                p.requires_grad_(True)

    def param_groups(self, lr: float, projector_lr: float, weight_decay: float = 0.0) -> list[dict]:
        """AdamW groups: LoRA weights at ``lr``, the projector at ``projector_lr`` (``--mm_projector_lr``)."""
        lora, proj = [], []
        for name, p in self.model.named_parameters():
            if p.requires_grad:
                (proj if "multi_modal_projector" in name else lora).append(p)
        return [{"params": lora, "lr": lr, "weight_decay": weight_decay},
                {"params": proj, "lr": projector_lr, "weight_decay": weight_decay}]

    def trainable_names(self) -> list[str]:
        return [n for n, p in self.model.named_parameters() if p.requires_grad]


def is_trainable_name(name: str) -> bool:
    """What X²-DFD's LoRA stage may train: LoRA matrices and the multimodal projector."""
    return bool(re.search(r"lora_[AB]|multi_modal_projector", name))


def resolve_local(path: str | Path) -> str:
    return str(Path(path).expanduser())
