"""Joint image-text embedding detector (Sec. III-B) and the binary-only baseline.

SJEDD embeds a face image and the ten label descriptions of :mod:`sjedd.labels` with CLIP and predicts by
image-text similarity: ``logits = image_features @ text_features.T / 10`` with the projected features left
unnormalised, as in the official ``model.py`` (the normalisation is commented out there, and the learnable logit
scale cancels, leaving a fixed 1/10). ``normalize=True`` is our ablation switch: cosine similarity times the
learnable ``exp(logit_scale)`` of CLIP. Both encoders are fine-tuned; the prompts are re-encoded every forward.

Models come from :func:`load_clip` (a real CLIP checkpoint, e.g. ``openai/clip-vit-base-patch32``, from a local
folder or hub id) or :func:`tiny_clip` (a small config plus a word-level tokenizer built offline in code, whose
bos/eos/pad ids are tokens it really emits, so that CLIP's text pooling reads the end-of-text position).

The image tower is either CLIP's own (a ViT) or :class:`ConvImageTower`, a small ResNet projected into the same
joint embedding, the CPU-scale analogue of the official ``--VM RN50`` choice (CLIP's ResNet image encoder); the
text tower and the <v, t> / 10 logits are the same for both.
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


def local_weights_folder(name_or_path: str | Path) -> Path | None:
    """The local folder of a checkpoint: ``name_or_path`` itself when it is a folder, else the snapshot of the hub id
    ``name_or_path`` in the local Hugging Face cache, else None. Reads the file system only: transformers' own hub
    resolution builds request headers even with ``local_files_only=True``, and huggingface_hub then fetches an
    "agent registry" from the network unless HF_HUB_OFFLINE is set, so a hub id never reaches it."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    from huggingface_hub import try_to_load_from_cache

    try:
        config = try_to_load_from_cache(str(name_or_path), "config.json")
    except ValueError:  # not a valid repo id either
        return None
    return Path(config).parent if isinstance(config, str) else None


def load_clip(name_or_path: str | Path):
    """A real CLIP model and tokenizer from a local folder, or from a hub id already in the local Hugging Face cache,
    with ``from_pretrained(folder, local_files_only=True)``. Nothing is ever downloaded; missing weights raise
    FileNotFoundError naming the weights and where to put them."""
    from transformers import AutoTokenizer

    hint = ("Expected a folder holding config.json, model.safetensors and the tokenizer files of a CLIP checkpoint, "
            "or a hub id already in the local Hugging Face cache. The paper's weights are openai/clip-vit-base-patch32 "
            "(ViT-B/32): download them once with `huggingface-cli download openai/clip-vit-base-patch32 "
            "--local-dir weights/clip-vit-base-patch32`, then pass clip=weights/clip-vit-base-patch32.")
    folder = local_weights_folder(name_or_path)
    if folder is None:
        raise FileNotFoundError(f"no local CLIP weights at {str(name_or_path)!r} (nothing is downloaded at run time: "
                                f"not a folder, and not in the local Hugging Face cache).\n{hint}")
    try:
        model = CLIPModel.from_pretrained(str(folder), local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as err:
        raise FileNotFoundError(f"no local CLIP weights at {str(folder)!r}: {err}\n{hint}") from err
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


class ConvImageTower(nn.Module):
    """A small CNN image encoder projected into the joint embedding: (B, 3, H, W) in [0, 1] -> (B, projection_dim).

    The CPU-scale analogue of the official ``--VM RN50`` option (CLIP's convolutional image tower): one block
    ``conv 3x3 -> BatchNorm -> ReLU -> max-pool 2`` per width (the first at full resolution, so that blending
    artefacts are not averaged away), global average pooling and a linear projection to the text tower's
    ``projection_dim``. Inputs are normalised with CLIP's mean and std; any input size works (no resize)."""

    def __init__(self, projection_dim: int, widths: tuple[int, ...] = (16, 32, 64, 128)):
        super().__init__()
        if not widths:
            raise ValueError("ConvImageTower needs at least one block width")
        self.projection_dim = projection_dim
        layers: list[nn.Module] = []
        for c_in, c_out in zip((3, *widths[:-1]), widths):
            layers += [nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(), nn.MaxPool2d(2)]
        self.blocks = nn.Sequential(*layers)
        self.projection = nn.Linear(widths[-1], projection_dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (batch, 3, H, W) in [0, 1], got shape {tuple(images.shape)}")
        mean = images.new_tensor(CLIP_MEAN).view(1, 3, 1, 1)
        std = images.new_tensor(CLIP_STD).view(1, 3, 1, 1)
        return self.projection(self.blocks((images - mean) / std).mean(dim=(2, 3)))


def drop_clip_image_tower(clip: CLIPModel) -> CLIPModel:
    """Remove CLIP's own image tower (in place) when another one replaces it, so that its unused weights are neither
    trained, counted nor saved."""
    clip.vision_model = None
    clip.visual_projection = None
    return clip


class JointEmbeddingDetector(nn.Module):
    """CLIP image features scored against the ten label descriptions: (B, 3, H, W) -> (B, 10) logits."""

    def __init__(self, clip: CLIPModel, tokenizer, normalize: bool = False, image_tower: nn.Module | None = None):
        super().__init__()
        self.clip = drop_clip_image_tower(clip) if image_tower is not None else clip
        self.image_tower = image_tower
        self.normalize = normalize
        tokens = tokenizer(prompts(), padding=True, return_tensors="pt")
        self.register_buffer("input_ids", tokens["input_ids"], persistent=False)
        self.register_buffer("attention_mask", tokens["attention_mask"], persistent=False)

    def text_features(self) -> torch.Tensor:
        """Projected features of the ten label descriptions, (10, projection_dim)."""
        return _features(self.clip.get_text_features(input_ids=self.input_ids, attention_mask=self.attention_mask))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Eq. (similarity): f_i = <v, t_i> / 10 (official), or cosine x exp(logit_scale) when ``normalize``."""
        image = encode_images(self.clip, images) if self.image_tower is None else self.image_tower(images)
        text = self.text_features()
        if self.normalize:
            image = nn.functional.normalize(image, dim=-1)
            text = nn.functional.normalize(text, dim=-1)
            return self.clip.logit_scale.exp() * image @ text.T
        return image @ text.T / 10.0


class BinaryDetector(nn.Module):
    """The baseline: the same image tower (CLIP's, or ``image_tower``) with a linear real/fake head, trained with
    binary cross-entropy (no text tower)."""

    def __init__(self, clip: CLIPModel | None, image_tower: nn.Module | None = None):
        super().__init__()
        if (clip is None) == (image_tower is None):
            raise ValueError("BinaryDetector takes either a CLIP (its image tower) or an image_tower, not both")
        self.clip = clip
        self.image_tower = image_tower
        dim = clip.config.projection_dim if clip is not None else image_tower.projection_dim
        self.head = nn.Linear(dim, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B,) fake logits."""
        features = encode_images(self.clip, images) if self.image_tower is None else self.image_tower(images)
        return self.head(features).squeeze(-1)


def load_pretrained_tiny(clip: CLIPModel, path: str | Path) -> CLIPModel:
    """Load the weights that ``pretrain.py --export`` wrote into a tiny CLIP of the same config (in place).

    Raises FileNotFoundError naming the file and the command that makes it, or ValueError when the file does not
    match the model (e.g. a different ``tiny_width``/``tiny_patch``/``face_size``)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no pretrained tiny CLIP at {str(path)!r}; make it with `uv run pretrain.py --config "
                                "configs/pretrain.yaml --export pretrained` or set tiny_init=null to start from "
                                "scratch")
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
