"""The joint embedding: official logits, the normalised ablation, CLIP's eos pooling with the offline tokenizer."""

import pytest
import torch

from sjedd.labels import prompts
from sjedd.model import BinaryDetector, JointEmbeddingDetector, encode_images, tiny_clip


@pytest.fixture(scope="module")
def clip_and_tokenizer():
    torch.manual_seed(0)
    return tiny_clip(image_size=32, patch_size=8, width=32, layers=1, heads=2, projection_dim=16)


def test_tokenizer_emits_the_configured_special_ids(clip_and_tokenizer):
    clip, tok = clip_and_tokenizer
    ids = tok(prompts()[0])["input_ids"]
    text_cfg = clip.config.text_config
    assert ids[0] == text_cfg.bos_token_id and ids[-1] == text_cfg.eos_token_id
    assert tok.unk_token_id not in ids  # every word of the prompts is in the vocabulary
    assert text_cfg.pad_token_id == tok.pad_token_id


def test_text_pooling_reads_the_eos_position(clip_and_tokenizer):
    clip, tok = clip_and_tokenizer
    batch = tok(prompts()[:2], padding=True, return_tensors="pt")
    out = clip.text_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    eos = (batch["input_ids"] == tok.eos_token_id).int().argmax(1)
    expected = out.last_hidden_state[torch.arange(2), eos]
    torch.testing.assert_close(out.pooler_output, expected)
    assert not torch.allclose(out.pooler_output, out.last_hidden_state[:, 0])


def test_logits_are_unnormalised_dot_products_over_ten(clip_and_tokenizer):
    clip, tok = clip_and_tokenizer
    model = JointEmbeddingDetector(clip, tok).eval()
    images = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        logits = model(images)
        image = encode_images(clip, images)
        batch = tok(prompts(), padding=True, return_tensors="pt")
        text = clip.get_text_features(**batch).pooler_output
    assert logits.shape == (3, 10)
    torch.testing.assert_close(logits, image @ text.T / 10)
    model_cos = JointEmbeddingDetector(clip, tok, normalize=True).eval()
    with torch.no_grad():
        cos = torch.nn.functional.normalize(image, dim=-1) @ torch.nn.functional.normalize(text, dim=-1).T
        torch.testing.assert_close(model_cos(images), clip.logit_scale.exp() * cos)


def test_resize_and_bad_shapes(clip_and_tokenizer):
    clip, tok = clip_and_tokenizer
    model = JointEmbeddingDetector(clip, tok).eval()
    assert model(torch.rand(2, 3, 48, 48)).shape == (2, 10)  # resized to the tower's 32 px
    assert BinaryDetector(clip)(torch.rand(2, 3, 32, 32)).shape == (2,)
    with pytest.raises(ValueError, match=r"\(batch, 3, H, W\)"):
        model(torch.rand(2, 1, 32, 32))


def test_cnn_tower_in_the_same_joint_embedding():
    """image_tower=cnn: a ResNet projected to the text tower's dimension, scored by the official <v, t> / 10;
    CLIP's own image tower is dropped (no unused weights trained or saved)."""
    from sjedd.model import ConvImageTower

    torch.manual_seed(0)
    clip, tok = tiny_clip(image_size=32, patch_size=8, width=32, layers=1, heads=2, projection_dim=16)
    tower = ConvImageTower(16, widths=(8, 16))
    model = JointEmbeddingDetector(clip, tok, image_tower=tower).eval()
    assert not any(k.startswith("clip.vision_model") or k.startswith("clip.visual_projection")
                   for k in model.state_dict())
    images = torch.rand(3, 3, 40, 40)  # any size: the tower pools globally
    with torch.no_grad():
        text = model.text_features()
        torch.testing.assert_close(model(images), tower(images) @ text.T / 10)
    assert tower(images).shape == (3, 16)
    binary = BinaryDetector(None, ConvImageTower(16, widths=(8,)))
    assert binary(images).shape == (3,)
    with pytest.raises(ValueError, match="either"):
        BinaryDetector(clip, tower)
