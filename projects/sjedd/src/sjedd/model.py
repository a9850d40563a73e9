"""Joint image-text embedding detector (Sec. III-B) and the binary-only baseline.

SJEDD embeds a face image and the ten label descriptions of :mod:`sjedd.labels` with CLIP and predicts by
image-text similarity: ``logits = image_features @ text_features.T / 10`` with the projected features left
unnormalised, as in the official ``model.py`` (the normalisation is commented out there, and the learnable logit
scale cancels, leaving a fixed 1/10). ``normalize=True`` is our ablation switch: cosine similarity times the
learnable ``exp(logit_scale)`` of CLIP. Both encoders are fine-tuned; the prompts are re-encoded every forward.

Models come from :func:`load_clip` (a real CLIP checkpoint, e.g. ``openai/clip-vit-base-patch32``, from a local
folder or hub id) or :func:`tiny_clip` (a small config plus a word-level tokenizer built offline in code, whose
bos/eos/pad ids are tokens it really emits, so that CLIP's text pooling reads the end-of-text position).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from transformers import CLIPConfig, CLIPModel, CLIPTextConfig, CLIPVisionConfig, PreTrainedTokenizerFast

from sjedd.captions import caption_vocabulary
from sjedd.labels import prompts

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
SPECIALS = ("<pad>", "<unk>", "<bos>", "<eos>")


def word_tokenizer(texts: list[str]) -> PreTrainedTokenizerFast:
    """A lower-casing word-level tokenizer over the words of ``texts`` that wraps every text in <bos> ... <eos>."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    vocab = {tok: i for i, tok in enumerate(SPECIALS)}
    for word in " ".join(texts).lower().split():
        vocab.setdefault(word, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A <eos>", special_tokens=[("<bos>", vocab["<bos>"]), ("<eos>", vocab["<eos>"])])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>",
                                   unk_token="<unk>")


def tiny_clip(image_size: int = 64, patch_size: int = 8, width: int = 64, layers: int = 2, heads: int = 4,
              projection_dim: int = 32) -> tuple[CLIPModel, PreTrainedTokenizerFast]:
    """A small CLIP (ViT image tower + text transformer) and its offline tokenizer, for CPU runs and tests.

    The vocabulary holds the words of the ten label descriptions and of the pretraining captions
    (:mod:`sjedd.captions`), so that a CLIP pretrained by ``pretrain.py`` and the detector share one tokenizer."""
    tokenizer = word_tokenizer(prompts() + caption_vocabulary())
    text = CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=width, intermediate_size=2 * width,
                          num_hidden_layers=layers, num_attention_heads=heads, max_position_embeddings=32,
                          bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                          pad_token_id=tokenizer.pad_token_id)
    vision = CLIPVisionConfig(hidden_size=width, intermediate_size=2 * width, num_hidden_layers=layers,
                              num_attention_heads=heads, image_size=image_size, patch_size=patch_size)
    config = CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=projection_dim)
    return CLIPModel(config), tokenizer


def load_clip(name_or_path: str | Path):
    """A real CLIP model and tokenizer with ``from_pretrained`` (local folder or hub id; nothing is downloaded
    when ``HF_HUB_OFFLINE=1``)."""
    from transformers import AutoTokenizer

    try:
        model = CLIPModel.from_pretrained(str(name_or_path))
        tokenizer = AutoTokenizer.from_pretrained(str(name_or_path))
    except OSError as err:
        raise FileNotFoundError(
            f"could not load CLIP weights from {str(name_or_path)!r}: {err}\nExpected a folder holding "
            "config.json, model.safetensors and the tokenizer files of a CLIP checkpoint (e.g. download "
            "openai/clip-vit-base-patch32 once with `huggingface-cli download openai/clip-vit-base-patch32 "
            "--local-dir weights/clip-vit-base-patch32`), then pass clip=weights/clip-vit-base-patch32."
        ) from err
    return model, tokenizer


def _features(output) -> torch.Tensor:
    """transformers 5 returns an output object from get_*_features; older versions a tensor."""
    return output.pooler_output if hasattr(output, "pooler_output") else output


def preprocess(clip: CLIPModel, images: torch.Tensor) -> torch.Tensor:
    """CLIP pixel values of images in [0, 1]: resized to the tower's size (bicubic) and normalised with CLIP's mean
    and std, as CLIP's preprocessing does."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be (batch, 3, H, W) in [0, 1], got shape {tuple(images.shape)}")
    size = clip.config.vision_config.image_size
    if images.shape[-2:] != (size, size):
        images = nn.functional.interpolate(images, size=(size, size), mode="bicubic", align_corners=False)
    mean = images.new_tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = images.new_tensor(CLIP_STD).view(1, 3, 1, 1)
    return (images - mean) / std


def encode_images(clip: CLIPModel, images: torch.Tensor) -> torch.Tensor:
    """Projected CLIP image features (B, projection_dim) of images in [0, 1] (see :func:`preprocess`)."""
    return _features(clip.get_image_features(pixel_values=preprocess(clip, images)))


class JointEmbeddingDetector(nn.Module):
    """CLIP image features scored against the ten label descriptions: (B, 3, H, W) -> (B, 10) logits."""

    def __init__(self, clip: CLIPModel, tokenizer, normalize: bool = False):
        super().__init__()
        self.clip = clip
        self.normalize = normalize
        tokens = tokenizer(prompts(), padding=True, return_tensors="pt")
        self.register_buffer("input_ids", tokens["input_ids"], persistent=False)
        self.register_buffer("attention_mask", tokens["attention_mask"], persistent=False)

    def text_features(self) -> torch.Tensor:
        """Projected features of the ten label descriptions, (10, projection_dim)."""
        return _features(self.clip.get_text_features(input_ids=self.input_ids, attention_mask=self.attention_mask))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Eq. (similarity): f_i = <v, t_i> / 10 (official), or cosine x exp(logit_scale) when ``normalize``."""
        image, text = encode_images(self.clip, images), self.text_features()
        if self.normalize:
            image = nn.functional.normalize(image, dim=-1)
            text = nn.functional.normalize(text, dim=-1)
            return self.clip.logit_scale.exp() * image @ text.T
        return image @ text.T / 10.0


class BinaryDetector(nn.Module):
    """The baseline: the same CLIP image tower with a linear real/fake head, trained with binary cross-entropy
    (the text tower is unused)."""

    def __init__(self, clip: CLIPModel):
        super().__init__()
        self.clip = clip
        self.head = nn.Linear(clip.config.projection_dim, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B,) fake logits."""
        return self.head(encode_images(self.clip, images)).squeeze(-1)


def load_pretrained_tiny(clip: CLIPModel, path: str | Path) -> CLIPModel:
    """Load the weights that ``pretrain.py --export`` wrote into a tiny CLIP of the same config (in place).

    Raises FileNotFoundError naming the file and the command that makes it, or ValueError when the file does not
    match the model (e.g. a different ``tiny_width``/``tiny_patch``/``face_size``)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no pretrained tiny CLIP at {str(path)!r}; make it with `uv run pretrain.py --config "
                                "configs/pretrain.yaml --export pretrained` or set tiny_init=null to start from scratch")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise ValueError(f"{path}: not a readable safetensors file ({err})") from err
    own = clip.state_dict()
    bad = sorted(set(own) ^ set(state)) + [k for k in own if k in state and own[k].shape != state[k].shape]
    if bad:
        raise ValueError(f"{path} does not match this tiny CLIP (tiny_width, tiny_layers, tiny_patch, tiny_projection "
                         f"and face_size must equal those of its .json); first mismatches: {bad[:4]}")
    clip.load_state_dict(state)
    return clip
