"""The tiny LLaVA wrapper: tokens, masking, scores, LoRA trainability, over-fitting."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from shared.data import faces_synth as fs
from x2dfd import mfa, prompts, wfs
from x2dfd.mllm import IGNORE_INDEX, MLLM, TinyLlavaConfig, is_trainable_name
from x2dfd.pipeline import corpus

TINY = TinyLlavaConfig(vision="clip", image_size=32, patch_size=8, vision_hidden=32, text_hidden=32, heads=2)


@pytest.fixture(scope="module")
def faces():
    return fs.make_dataset(4, 2, ("real", "sbi"), size=32, seed=0).images


def tiny(seed=0) -> MLLM:
    return MLLM.tiny(corpus(mfa.load_question_bank()), TINY, seed=seed)


def test_tokenizer_ids_and_digits():
    m = tiny()
    tok = m.tokenizer
    assert (tok.pad_token_id, tok.bos_token_id, tok.eos_token_id, m.image_token_id) == (0, 1, 2, 4)
    assert m.model.config.text_config.eos_token_id == tok.eos_token_id
    pieces = tok.tokenize(wfs.expert_question({"Blending": 0.8123}))
    assert pieces[-6:] == ["0", ".", "8", "1", "2", "."] and tok.unk_token_id not in tok.convert_tokens_to_ids(pieces)
    assert m.word_id("real") != m.word_id("fake") and m.word_id("Yes") == m.word_id("yes")


def test_image_tokens_expanded_and_labels_masked():
    m = tiny()
    enc = m.encode([prompts.human_turn()], ["This image is fake."])
    ids, labels = enc["input_ids"][0], enc["labels"][0]
    assert int((ids == m.image_token_id).sum()) == 16  # (32 / 8)^2
    supervised = labels != IGNORE_INDEX
    assert m.tokenizer.decode(ids[supervised]) == "this image is fake . </s>"
    assert not supervised[: int(supervised.nonzero()[0])].any()  # the whole prompt is masked
    with pytest.raises(ValueError, match="exactly one"):
        m.encode(["Is this image real or fake?"])


def test_image_token_mismatch_raises(faces):
    m = tiny()
    enc = m.encode([prompts.human_turn()])
    is_img = enc["input_ids"][0] == m.image_token_id
    keep = ~is_img | (is_img & (is_img.cumsum(0) <= 8))  # only 8 of the 16 image tokens: the model must refuse
    ids = enc["input_ids"][:, keep]
    with pytest.raises(ValueError):
        m.model(input_ids=ids, attention_mask=torch.ones_like(ids), pixel_values=m.pixel_values(faces[:1]))
    with pytest.raises(ValueError, match="uint8"):
        m.pixel_values(np.zeros((2, 32, 32)))


def test_scores_are_probabilities(faces):
    m = tiny()
    p = m.p_fake(faces, wfs.expert_question({"Blending": 0.5}), batch_size=3)
    assert p.shape == (len(faces),) and np.all((p > 0) & (p < 1))
    # the same as a manual softmax over the two answer-word logits after "This image is"
    logits = m.next_token_logits(faces[:2], [wfs.expert_question({"Blending": 0.5})] * 2, suffix="This image is")
    two = logits[:, [m.word_id("real"), m.word_id("fake")]]
    assert np.allclose(p[:2], torch.softmax(two, 1)[:, 1].numpy(), atol=1e-6)
    q = m.p_yes(faces, "Is the face color unusual? Answer Yes or No.")
    assert np.all((q > 0) & (q < 1))
    with pytest.raises(ValueError, match="prompts"):
        m.p_fake(faces, ["<image>\nx"] * 2)


def test_only_lora_and_projector_train():
    m = tiny()
    m.add_lora(16, 32, 0.05)
    names = m.trainable_names()
    assert names and all(is_trainable_name(n) for n in names)
    assert any("multi_modal_projector" in n for n in names) and any("lora_A" in n for n in names)
    assert not any("vision_tower" in n or "embed_tokens" in n or "lm_head" in n for n in names)
    assert not any("vision_tower" in n and "lora" in n for n, _ in m.model.named_parameters())
    groups = m.param_groups(2e-4, 2e-5)
    assert groups[0]["lr"] == 2e-4 and groups[1]["lr"] == 2e-5
    assert sum(p.numel() for p in groups[1]["params"]) == sum(
        p.numel() for n, p in m.model.named_parameters() if "multi_modal_projector" in n)


def test_loss_falls_when_overfitting(faces):
    torch.manual_seed(0)
    m = tiny()
    m.add_lora(16, 32, 0.0)
    opt = torch.optim.AdamW(m.param_groups(3e-3, 3e-3))
    asks = [prompts.human_turn()] * 4
    ans = ["This image is real.", "This image is fake.", "This image is real.", "This image is fake."]
    losses = []
    for _ in range(25):
        m.model.train()
        loss = m.loss(faces[[0, 2, 1, 3]], asks, ans)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_generate_returns_text(faces):
    m = tiny()
    out = m.generate(faces[:2], [prompts.human_turn()] * 2, max_new_tokens=3)
    assert len(out) == 2 and all(isinstance(t, str) for t in out)


def test_missing_pretrained_weights_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="llava-hf"):
        MLLM.from_pretrained(str(tmp_path / "no-such-llava"))


def test_expert_score_changes_the_answer(faces):
    """WFS works only if the model reads the injected score: trained on items whose label follows the score
    (the same images appear as real and fake), swapping the score in the question must move P(fake)."""
    import dataclasses

    torch.manual_seed(0)
    m = MLLM.tiny(corpus(mfa.load_question_bank()), dataclasses.replace(TINY, text_hidden=64), seed=0)
    m.add_lora(16, 32, 0.0)
    opt = torch.optim.AdamW(m.param_groups(1e-2, 1e-2))
    rng = np.random.default_rng(0)
    for _ in range(60):
        m.model.train()
        idx = rng.integers(0, len(faces), 8)
        scores = rng.choice([0.1, 0.2, 0.8, 0.9], 8) + rng.uniform(0, 0.05, 8)
        labels = ["fake" if s > 0.5 else "real" for s in scores]
        loss = m.loss(faces[idx], [wfs.expert_question({"Blending": s}) for s in scores],
                      [prompts.compose_labeled_response(lbl) for lbl in labels])
        opt.zero_grad()
        loss.backward()
        opt.step()
    high = m.p_fake(faces, wfs.expert_question({"Blending": 0.9}))
    low = m.p_fake(faces, wfs.expert_question({"Blending": 0.1}))
    assert np.all(high - low > 0.5), (high, low)


def test_bfloat16_tiny_scores(faces):
    from x2dfd.mllm import torch_dtype

    m = tiny()
    m.model.to(torch_dtype("bfloat16"))
    p = m.p_fake(faces[:2], prompts.human_turn())
    assert m.model.dtype == torch.bfloat16 and np.all((p > 0) & (p < 1))
    with pytest.raises(ValueError, match="dtype"):
        torch_dtype("float8")


def test_lite0_tower_tokens_and_cache(faces):
    """The offline pretrained vision tower: frozen ImageNet EfficientNet-Lite0 features, 4 x 4 tokens at 64 px."""
    from x2dfd.mllm import LITE0_CHANNELS, lite0_features

    cfg = TinyLlavaConfig(vision="lite0", image_size=64, text_hidden=32, heads=2)
    m = MLLM.tiny(corpus(mfa.load_question_bank()), cfg, seed=0)
    assert m.n_image_tokens == 16
    px = m.pixel_values(faces)
    assert px.shape == (len(faces), LITE0_CHANNELS, 4, 4) and lite0_features(faces, 64) is px  # cached
    p = m.p_fake(faces, prompts.human_turn())
    assert np.allclose(p, m.p_fake(px, prompts.human_turn()), atol=1e-6)
    assert not any("vision_tower" in n for n, _ in m.model.named_parameters())  # frozen, outside the model
