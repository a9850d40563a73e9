"""The fine-tuned VLM verifier: PaliGemma + LoRA answering "yes" / "no" (+ an optional explanation).

VLM-HV fine-tunes PaliGemma with LoRA on a small curated set; the PDF's details (checkpoint, rank, targets,
prompt, how two images are fed) are not public, so the choices here are ours (README, Deviations):

* **Two images in one.** PaliGemma-1 takes one image, so the Known sample goes on top and the Questioned
  sample below, each resized from its *original* scan to (S/2) x S -- close to the natural aspect of a word
  crop -- in one S x S uint8 image (:func:`compose_pair`). S is the processor's own size (224 for
  ``google/paligemma-3b-pt-224``), independent of the ResNet's 64 x 64. The picture reaches the processor in
  the range it expects (:func:`processor_images`): uint8 when it rescales by 1/255 (SigLIP's
  ``do_rescale=True``), float in [0, 1] otherwise.
* **Prompt / target.** Prefix ``answer en same writer?`` (PaliGemma's task-prefix style), suffix ``yes`` or
  ``no``, optionally followed by an explanation; the loss covers the suffix only (PaliGemma's prefix-LM:
  bidirectional attention on image + prefix, causal on the suffix, via ``token_type_ids``).
* **Score.** logit(yes) - logit(no) at the first answer position gives a same-writer score for AUC/EER, with
  the two token ids read from the tokenized training suffixes (:func:`answer_token_ids`), not from the bare
  words (a SentencePiece tokenizer may spell the suffix "yes" as another token than "yes");
  the decision is the greedy answer parsed with the official parser, and the rest of the generated text is
  kept as the explanation.
* **Offline.** Without a checkpoint, :func:`tiny_paligemma` builds a small PaliGemma from config with a
  closed-vocabulary word-level tokenizer built in code (its bos/eos/pad ids are tokens it emits), and a vision
  tower that is either a random SigLIP or :class:`Lite0VisionTower`: the ImageNet EfficientNet-Lite0 of
  ``shared.data.pretrained`` (real weights), whose feature map becomes the image tokens.
* **Tuning.** ``lora`` (peft adapters only, as the paper) or ``full`` (every parameter, the vision tower
  optionally frozen as in PaliGemma's own fine-tuning recipe and SSL-HV's frozen backbone).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from tokenizers import Tokenizer, models, pre_tokenizers
from torch import nn
from transformers import (
    GemmaConfig,
    PaliGemmaConfig,
    PaliGemmaForConditionalGeneration,
    PaliGemmaProcessor,
    PreTrainedTokenizerFast,
    SiglipImageProcessor,
    SiglipVisionConfig,
)
from transformers.modeling_outputs import BaseModelOutputWithPooling

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
    """A PaliGemma processor built offline: a SigLIP image processor configured like the real one
    (``do_rescale=True`` with factor 1/255, mean = std = 0.5, bicubic resize) + the word tokenizer."""
    image_processor = SiglipImageProcessor(size={"height": image_size, "width": image_size}, do_rescale=True,
                                           rescale_factor=1 / 255, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    image_processor.image_seq_length = (image_size // patch) ** 2  # saved with the processor, read by __init__
    return PaliGemmaProcessor(image_processor=image_processor, tokenizer=word_tokenizer(extra_words))


class Lite0VisionTower(nn.Module):
    """ImageNet EfficientNet-Lite0 (``shared.data.pretrained``, real weights) as PaliGemma's vision tower.

    The stem and the blocks up to feature level ``stage`` (strides 2, 4, 8, 16, 32 for stage 0..4; channels
    16, 24, 40, 112, 320) map the processor's pixel values -- normalised with mean = std = 0.5, which is also
    the Lite0 preprocessing -- to a feature map whose cells, read row by row, are the image tokens. The
    multi-modal projector then maps their channels to the text width, as it does for SigLIP's patches.
    """

    STRIDES = (2, 4, 8, 16, 32)
    CHANNELS = (16, 24, 40, 112, 320)

    def __init__(self, stage: int = 2, pretrained: bool = True):
        super().__init__()
        from shared.data.pretrained import efficientnet_lite0

        if stage not in range(5):
            raise ValueError(f"Lite0 feature stage must be 0..4, got {stage}")
        features = efficientnet_lite0(pretrained=pretrained, features_only=True, out_indices=(stage,))
        last_block = int(features.feature_info.get_dicts()[0]["module"].split(".")[1])
        self.conv_stem, self.bn1 = features.conv_stem, features.bn1
        self.blocks = nn.Sequential(*list(features.blocks)[:last_block + 1])  # the rest is never used

    def forward(self, pixel_values: torch.Tensor, **_) -> BaseModelOutputWithPooling:
        fmap = self.blocks(self.bn1(self.conv_stem(pixel_values)))
        return BaseModelOutputWithPooling(last_hidden_state=fmap.flatten(2).transpose(1, 2))


def tiny_paligemma(processor: PaliGemmaProcessor, cfg: VLMConfig, pretrained_tower: bool = True
                   ) -> PaliGemmaForConditionalGeneration:
    """A small PaliGemma from config, sized by ``cfg.tiny_*``: Gemma with random weights, and a random SigLIP
    (``vision_tower="siglip"``) or the ImageNet EfficientNet-Lite0 (``"lite0"``) as the vision tower."""
    tok = processor.tokenizer
    h = cfg.tiny_hidden
    if cfg.vision_tower == "lite0":  # the "patch" of a token is the stride of the chosen feature level
        vision_hidden, patch = Lite0VisionTower.CHANNELS[cfg.lite0_stage], Lite0VisionTower.STRIDES[cfg.lite0_stage]
    else:
        vision_hidden, patch = h, cfg.tiny_patch
    config = PaliGemmaConfig(
        vision_config=SiglipVisionConfig(hidden_size=vision_hidden, intermediate_size=2 * h,
                                         num_hidden_layers=cfg.tiny_layers, num_attention_heads=4,
                                         image_size=cfg.image_size, patch_size=patch),
        text_config=GemmaConfig(vocab_size=len(tok), hidden_size=h, intermediate_size=2 * h,
                                num_hidden_layers=cfg.tiny_layers, num_attention_heads=4, num_key_value_heads=1,
                                head_dim=h // 4, pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                                eos_token_id=tok.eos_token_id),
        image_token_index=tok.convert_tokens_to_ids("<image>"), vocab_size=len(tok), projection_dim=h,
        hidden_size=h)
    model = PaliGemmaForConditionalGeneration(config)
    if cfg.vision_tower == "lite0":
        model.model.vision_tower = Lite0VisionTower(cfg.lite0_stage, pretrained=pretrained_tower)
    # The output layer is tied to the token embeddings. At the default init (std 0.02) a logit is at most
    # |RMSNorm(h)| * |e| ~ sqrt(h) * 0.02 sqrt(h) ~ 1, so under LoRA (embeddings frozen) no answer could ever
    # become likely; a pretrained model has large embeddings. Give the random ones std 0.25 (logits up to ~0.25 h).
    torch.nn.init.normal_(model.get_input_embeddings().weight, std=0.25)
    return model


def load_base(cfg: VLMConfig) -> tuple[PaliGemmaForConditionalGeneration, PaliGemmaProcessor]:
    """The base model and processor: a local PaliGemma checkpoint, or the tiny offline one (``pretrained=None``)."""
    if cfg.pretrained is None:
        patch = Lite0VisionTower.STRIDES[cfg.lite0_stage] if cfg.vision_tower == "lite0" else cfg.tiny_patch
        processor = tiny_processor(cfg.image_size, patch)
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


def vision_tower(model) -> nn.Module:
    """The vision tower of a (possibly LoRA-wrapped) PaliGemma."""
    inner = model.get_base_model() if isinstance(model, PeftModel) else model
    return inner.model.vision_tower


def prepare_tuning(model: PaliGemmaForConditionalGeneration, cfg: VLMConfig):
    """``lora``: peft adapters only. ``full``: every parameter trains, except the vision tower when
    ``freeze_vision`` (its BatchNorm statistics, if any, then stay the pretrained ones: eval mode)."""
    if cfg.tuning == "lora":
        return add_lora(model, cfg)
    if cfg.tuning != "full":
        raise ValueError(f"vlm.tuning must be 'lora' or 'full', got {cfg.tuning!r}")
    for p in model.parameters():
        p.requires_grad_(True)
    if cfg.freeze_vision:
        for p in vision_tower(model).parameters():
            p.requires_grad_(False)
    return model


def compose_pair(known: np.ndarray, questioned: np.ndarray, size: int) -> np.ndarray:
    """Known on top, Questioned below, each resized from its original scan to (size/2) x size.

    Args:
        known, questioned: uint8 grey scans (H, W) at their original resolution (white paper = 255).
    Returns:
        uint8 (size, size, 3).
    """
    for name, img in (("known", known), ("questioned", questioned)):
        if np.asarray(img).dtype != np.uint8 or np.asarray(img).ndim != 2:
            raise ValueError(f"compose_pair expects uint8 grey scans (H, W); {name} is "
                             f"{np.asarray(img).dtype} {np.asarray(img).shape}")
    half = size // 2
    top = cv2.resize(known, (size, half), interpolation=cv2.INTER_AREA)
    bottom = cv2.resize(questioned, (size, size - half), interpolation=cv2.INTER_AREA)
    return np.repeat(np.concatenate([top, bottom])[..., None], 3, axis=2)


def processor_images(pictures: list[np.ndarray], image_processor) -> list[np.ndarray]:
    """uint8 pictures in the range the image processor expects: as they are when it rescales by 1/255
    (``do_rescale=True``, SigLIP's default), as float in [0, 1] when it does not."""
    if getattr(image_processor, "do_rescale", True):
        return pictures
    return [p.astype(np.float32) / 255.0 for p in pictures]


def processor_size(image_processor) -> int:
    """The square side the processor resizes to (``size = {"height", "width"}``)."""
    size = image_processor.size
    height, width = (size["height"], size["width"]) if "height" in size else (size["shortest_edge"],) * 2
    if height != width:
        raise ValueError(f"expected a square processor size, got {height} x {width}")
    return int(height)


def answer_token_ids(processor: PaliGemmaProcessor, prompt: str, answers: tuple[str, ...] = ("yes", "no"),
                     size: int = 8) -> list[int]:
    """The id of the first answer token of each training suffix, read from the processor's own tokenization of
    a training example (the first label that is not -100), so the score looks at the token the model was
    trained to emit -- with SentencePiece "yes" after the prompt can be "▁yes", not the token "yes"."""
    blank = np.full((size, size, 3), 255, np.uint8)
    images = processor_images([blank] * len(answers), processor.image_processor)
    batch = processor(images=images, text=["<image>" + prompt] * len(answers), suffix=list(answers),
                      return_tensors="pt", padding="longest")
    ids = []
    for row in batch["labels"]:
        answer = row[row != -100]
        if len(answer) == 0:
            raise ValueError("the processor produced no label tokens for the suffix")
        ids.append(int(answer[0]))
    if len(set(ids)) != len(ids):
        raise ValueError(f"the answers {answers} start with the same token {ids}; the score needs distinct ones")
    if processor.tokenizer.unk_token_id in ids:
        raise ValueError(f"the tokenizer spells an answer of {answers} as the unknown token")
    return ids


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
    """A (LoRA-wrapped or fully tuned) PaliGemma and its processor: batch building, scoring and answering.

    ``originals`` passed to the methods are the uint8 grey scans at their original resolution (one per
    sample, indexable); pictures are composed at the processor's own size.
    """

    def __init__(self, model, processor: PaliGemmaProcessor, cfg: VLMConfig, device: torch.device):
        self.model, self.processor, self.cfg, self.device = model.to(device), processor, cfg, device
        self.size = processor_size(processor.image_processor)
        self.yes_id, self.no_id = answer_token_ids(processor, cfg.prompt)

    def batch(self, originals, pairs: np.ndarray, suffixes: list[str] | None = None) -> dict:
        """Processor inputs for ``pairs`` (rows i, j, ...); with ``suffixes`` also ``labels`` (prefix = -100)."""
        pictures = [compose_pair(originals[i], originals[j], self.size) for i, j in pairs[:, :2]]
        prompts = ["<image>" + self.cfg.prompt] * len(pictures)
        inputs = self.processor(images=processor_images(pictures, self.processor.image_processor), text=prompts,
                                suffix=suffixes, return_tensors="pt", padding="longest")
        return {k: v.to(self.device) for k, v in inputs.items()}

    def train(self) -> None:
        """Training mode; a frozen vision tower keeps its (pretrained) BatchNorm statistics."""
        self.model.train()
        if self.cfg.tuning == "full" and self.cfg.freeze_vision:
            vision_tower(self.model).eval()

    def loss(self, originals, pairs: np.ndarray, suffixes: list[str]) -> torch.Tensor:
        """Next-token cross-entropy on the answer (suffix) tokens only."""
        return self.model(**self.batch(originals, pairs, suffixes)).loss

    @torch.no_grad()
    def scores(self, originals, pairs: np.ndarray, batch_size: int = 64, quiet: bool = True) -> np.ndarray:
        """Same-writer score sigmoid(logit_yes - logit_no) at the first answer position."""
        from shared.runs import progress

        self.model.eval()
        out = []
        for k in progress(range(0, len(pairs), batch_size), desc="VLM scores", quiet=quiet):
            inputs = self.batch(originals, pairs[k:k + batch_size])
            logits = self.model(**inputs).logits[:, -1]
            out.append(torch.sigmoid(logits[:, self.yes_id] - logits[:, self.no_id]).float().cpu())
        return torch.cat(out).numpy()

    @torch.no_grad()
    def answer(self, originals, pairs: np.ndarray, batch_size: int = 64, quiet: bool = True) -> list[dict[str, str]]:
        """Greedy answers: the generated text, its parsed decision (official parser) and the explanation."""
        from shared.runs import progress

        self.model.eval()
        rows = []
        for k in progress(range(0, len(pairs), batch_size), desc="VLM answers", quiet=quiet):
            inputs = self.batch(originals, pairs[k:k + batch_size])
            generated = self.model.generate(**inputs, max_new_tokens=self.cfg.max_new_tokens, do_sample=False)
            texts = self.processor.batch_decode(generated[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
            for text in texts:
                text = text.strip()
                first, _, rest = text.partition(" ")
                rows.append({"text": text, "decision": parse_decision(first), "explanation": rest.strip()})
        return rows


def _tied(model) -> bool:
    inner = model.get_base_model() if isinstance(model, PeftModel) else model
    return inner.lm_head.weight.data_ptr() == inner.get_input_embeddings().weight.data_ptr()


class ModelState:
    """``state_dict`` / ``load_state_dict`` of a whole PaliGemma without the tied copy of the output layer
    (safetensors refuses tensors that share memory); buffers (a Lite0 tower's BatchNorm statistics) included."""

    def __init__(self, model):
        self.model = model

    def state_dict(self) -> dict[str, torch.Tensor]:
        state = self.model.state_dict()
        if _tied(self.model):
            state = {k: v for k, v in state.items() if not k.endswith("lm_head.weight")}
        return {k: v.detach().contiguous() for k, v in state.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor], strict: bool = True) -> None:
        missing, unexpected = self.model.load_state_dict(state, strict=False)
        missing = [k for k in missing if not (k.endswith("lm_head.weight") and _tied(self.model))]
        if strict and (missing or unexpected):
            raise RuntimeError(f"state does not match the model: missing {missing[:5]}, unexpected {unexpected[:5]}")


class TrainableState(ModelState):
    """What training changes, for checkpoints: the LoRA adapters (peft; never the multi-GB frozen base), or the
    whole model under full tuning."""

    def state_dict(self) -> dict[str, torch.Tensor]:
        if isinstance(self.model, PeftModel):
            from peft import get_peft_model_state_dict

            return {k: v.detach().contiguous() for k, v in get_peft_model_state_dict(self.model).items()}
        return super().state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor], strict: bool = True) -> None:
        if not isinstance(self.model, PeftModel):
            return super().load_state_dict(state, strict)
        from peft import set_peft_model_state_dict

        result = set_peft_model_state_dict(self.model, state)
        unexpected = getattr(result, "unexpected_keys", [])
        if strict and unexpected:
            raise RuntimeError(f"unexpected LoRA keys {unexpected[:5]}")
        return None
