"""The pretraining stage: captions measured from the faces, CLIP's contrastive loss, export and fine-tuning from it."""

import math

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from shared.data.faces_synth import REGION_NAMES, FaceBatch
from sjedd.captions import ATTRIBUTE_WORDS, face_attributes, face_captions
from sjedd.config import Config
from sjedd.losses import clip_contrastive_loss
from sjedd.model import load_pretrained_tiny, tiny_clip
from sjedd.training import build_model


def hand_made_faces() -> FaceBatch:
    """Two 32-px faces: (0) light skin, black brows, upright, closed mouth, red background;
    (1) dark skin, fair brows, head tilted ~10 degrees clockwise, open mouth, grey background."""
    size = 32
    images = np.zeros((2, size, size, 3), np.uint8)
    images[0], images[1] = (200, 30, 30), (128, 128, 128)
    regions = {k: np.zeros((2, size, size), bool) for k in REGION_NAMES}
    regions["skin"][:, 8:24, 8:24] = True
    images[0, 8:24, 8:24], images[1, 8:24, 8:24] = (235, 205, 185), (110, 75, 50)
    regions["brows"][:, 8:10, 10:22] = True
    images[0, 8:10, 10:22], images[1, 8:10, 10:22] = (20, 15, 10), (150, 120, 80)
    regions["mouth"][:, 18:22, 12:20] = True
    regions["lips"][:, 18:22, 12:20] = True
    regions["lips"][1, 19:21, 13:19] = False  # an opening of 12 of 32 mouth pixels
    landmarks = np.zeros((2, 81, 2), np.float32)
    for i, angle in enumerate((0.0, np.deg2rad(10))):
        rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        pts = np.zeros((81, 2))
        pts[36:42] = [[-6, 0], [-5, -1], [-3, -1], [-2, 0], [-3, 1], [-5, 1]]  # eye height/width = 2/4
        pts[42:48] = pts[36:42] + [8, 0]
        pts[48], pts[54], pts[51], pts[57] = [-3, 8], [3, 8], [0, 7], [0, 9]  # corners level with the centre
        landmarks[i] = pts @ rot.T + 16
    return FaceBatch(images, np.zeros((2, size, size), np.float32), landmarks, regions, [{}, {}])


def test_captions_describe_the_measured_attributes():
    attrs = face_attributes(hand_made_faces())
    words = {k: [ATTRIBUTE_WORDS[k][v] for v in attrs[k]] for k in attrs}
    assert words["skin"] == ["light", "dark"]
    assert words["hair"] == ["black", "fair"]
    assert words["mouth"] == ["closed", "open"]
    assert words["tilt"] == ["upright", "tilted right"]
    assert words["background"] == ["red", "grey"]
    assert words["smile"] == ["neutral", "neutral"]
    assert words["eyes"] == ["wide", "wide"]
    caption = face_captions(hand_made_faces())[0]
    assert caption.startswith("a photo of a face with light skin and black hair")
    assert "fake" not in caption and "altered" not in caption  # nothing about manipulations


def test_tokenizer_covers_every_caption_word():
    _, tok = tiny_clip(image_size=32, width=32, layers=1, heads=2, projection_dim=16)
    for k, values in ATTRIBUTE_WORDS.items():
        for v in values:
            caption = face_captions(hand_made_faces())[0].replace("light", v)
            assert tok.unk_token_id not in tok(caption)["input_ids"], (k, v)


def test_clip_contrastive_loss_by_hand():
    image = torch.tensor([[1.0, 0.0], [0.0, 3.0]])  # normalised: e1, e2
    text = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    loss = clip_contrastive_loss(image, text, torch.tensor(0.0))  # scale exp(0) = 1: logits = identity
    assert loss.item() == pytest.approx(math.log(1 + math.exp(-1)), abs=1e-6)
    swapped = clip_contrastive_loss(image, text.flip(0), torch.tensor(0.0))
    assert swapped.item() == pytest.approx(math.log(1 + math.exp(1)), abs=1e-6)
    with pytest.raises(ValueError, match="must match"):
        clip_contrastive_loss(image, text[:1], torch.tensor(0.0))


def test_pretrain_exports_a_checkpoint_that_train_fine_tunes_from(tmp_path):
    from sjedd.pretrain import main as pretrain

    pretrain(["--smoke", "--quiet", "--device", "cpu", "--threads", "1", "--out", str(tmp_path / "runs"),
                   "--export", str(tmp_path / "pretrained")])
    weights = tmp_path / "pretrained" / "tiny_clip_faces.safetensors"
    for suffix in (".json", ".log"):
        assert weights.with_suffix(suffix).is_file()
    state = load_file(str(weights))
    cfg = Config(face_size=32, tiny_width=32, tiny_layers=1, tiny_init=str(weights), method="fixed")
    model = build_model(cfg)
    for key in ("vision_model.embeddings.patch_embedding.weight", "text_model.embeddings.token_embedding.weight"):
        torch.testing.assert_close(model.clip.state_dict()[key], state[key])
    assert not torch.equal(build_model(Config(face_size=32, tiny_width=32, tiny_layers=1, method="fixed"))
                           .clip.state_dict()["visual_projection.weight"], state["visual_projection.weight"])


def test_pretrained_file_errors(tmp_path):
    clip, _ = tiny_clip(image_size=32, width=32, layers=1, heads=2, projection_dim=16)
    with pytest.raises(FileNotFoundError, match="pretrain.py"):
        load_pretrained_tiny(clip, tmp_path / "missing.safetensors")
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="not a readable safetensors"):
        load_pretrained_tiny(clip, corrupt)
    other, _ = tiny_clip(image_size=64, width=32, layers=1, heads=2, projection_dim=16)
    from safetensors.torch import save_file
    save_file({k: v.contiguous() for k, v in other.state_dict().items()}, str(tmp_path / "other.safetensors"))
    before = clip.state_dict()["visual_projection.weight"].clone()
    with pytest.raises(ValueError, match="does not match"):
        load_pretrained_tiny(clip, tmp_path / "other.safetensors")
    torch.testing.assert_close(clip.state_dict()["visual_projection.weight"], before)  # nothing half-loaded
