"""Nothing is downloaded: real CLIP weights load with local_files_only=True, and a missing checkpoint is an error
that names the weights and where to put them, without any network attempt even when the hub is not set offline."""

import socket

import huggingface_hub.constants
import pytest

from sjedd.config import Config
from sjedd.model import load_clip
from sjedd.training import build_model


@pytest.fixture
def hub_unreachable(monkeypatch, tmp_path):
    """Online mode as far as the libraries know (HF_HUB_OFFLINE unset, an empty cache), but every socket connection
    is recorded and refused: a test that uses this fixture fails if any code path tries the network."""
    attempts = []

    def refuse(self, address, *args, **kwargs):
        attempts.append(address)
        raise OSError(f"network access attempted: {address}")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", lambda address, *a, **k: refuse(None, address))
    return attempts


def test_hub_id_without_local_weights_names_them_and_never_connects(hub_unreachable):
    with pytest.raises(FileNotFoundError) as info:
        load_clip("openai/clip-vit-base-patch32")
    message = str(info.value)
    assert "openai/clip-vit-base-patch32" in message and "--local-dir" in message and "clip=" in message
    assert hub_unreachable == []


def test_every_config_path_is_offline(hub_unreachable, tmp_path):
    """The paper's config (hub id), a missing local folder, and the offline default: none touches the network."""
    for clip in ("openai/clip-vit-base-patch32", str(tmp_path / "no-such-folder")):
        for tower in ("clip", "cnn"):
            with pytest.raises(FileNotFoundError, match="no local CLIP weights"):
                build_model(Config(clip=clip, image_tower=tower))
    for method in ("sjedd", "fixed", "binary"):
        build_model(Config(method=method, image_tower="cnn", face_size=32, tiny_width=32, tiny_layers=1))
    assert hub_unreachable == []


def test_local_folder_loads_without_network(hub_unreachable, tmp_path):
    """A CLIP saved with save_pretrained loads from its folder (model and tokenizer) with the hub unreachable."""
    from sjedd.model import tiny_clip

    clip, tokenizer = tiny_clip(image_size=32, patch_size=8, width=32, layers=1, heads=2, projection_dim=16)
    clip.save_pretrained(tmp_path / "clip")
    tokenizer.save_pretrained(tmp_path / "clip")
    model = build_model(Config(clip=str(tmp_path / "clip"), method="fixed"))
    assert model.clip.config.projection_dim == 16
    assert hub_unreachable == []
