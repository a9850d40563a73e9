"""The tiny PaliGemma + LoRA verifier built offline: tokens, labels, trainable parameters, learning."""

import numpy as np
import pytest
import torch

from hwverify.config import VLMConfig
from hwverify.vlm import (
    FEATURES,
    LoraState,
    VLMVerifier,
    add_lora,
    answer_text,
    compose_pair,
    load_base,
    word_tokenizer,
)

CFG = VLMConfig(pretrained=None, image_size=32, tiny_hidden=32, tiny_patch=8, lora_r=4, lr=3e-3)


@pytest.fixture(scope="module")
def verifier():
    torch.manual_seed(0)
    base, processor = load_base(CFG)
    return VLMVerifier(add_lora(base, CFG), processor, CFG, torch.device("cpu"))


def test_tokenizer_emits_its_special_ids():
    tok = word_tokenizer()
    ids = tok("<bos> answer en same writer? yes <eos> <pad>")["input_ids"]
    assert ids[0] == tok.bos_token_id and ids[-2] == tok.eos_token_id and ids[-1] == tok.pad_token_id
    assert tok.unk_token_id not in ids
    text = answer_text(0, {k: 0 for k in FEATURES} | {"slant": 0.0}, {k: 1 for k in FEATURES} | {"slant": 0.5})
    assert text.startswith("no : ") and tok.unk_token_id not in tok(text)["input_ids"]


def test_compose_pair_known_on_top_questioned_below():
    known, questioned = np.zeros((64, 64), np.float32), np.ones((64, 64), np.float32)
    img = compose_pair(known, questioned, 32)
    assert img.shape == (32, 32, 3) and np.all(img[:16] == 0) and np.all(img[16:] == 1)


def test_batch_has_image_tokens_and_prefix_masked_labels(verifier):
    images = np.random.default_rng(0).random((4, 16, 16)).astype(np.float32)
    pairs = np.array([[0, 1, 1], [2, 3, 0]])
    batch = verifier.batch(images, pairs, ["yes", "no"])
    tok = verifier.processor.tokenizer
    n_img = (32 // 8) ** 2
    ids, labels = batch["input_ids"], batch["labels"]
    assert (ids[:, :n_img] == tok.convert_tokens_to_ids("<image>")).all() and (ids[:, n_img] == tok.bos_token_id).all()
    assert batch["pixel_values"].shape == (2, 3, 32, 32)
    answer = (labels != -100)
    assert answer.sum(1).tolist() == [2, 2]  # "yes"/"no" + <eos>
    assert labels[0][answer[0]].tolist() == [verifier.yes_id, tok.eos_token_id]
    assert labels[1][answer[1]].tolist() == [verifier.no_id, tok.eos_token_id]
    assert (batch["token_type_ids"][answer] == 1).all() and (batch["token_type_ids"][~answer & (ids != tok.pad_token_id)] == 0).all()


def test_only_lora_parameters_train_and_loss_decreases(verifier):
    trainable = [n for n, p in verifier.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert set(LoraState(verifier.model).state_dict()) == {n.replace(".default", "") for n in trainable}
    images = np.random.default_rng(1).random((8, 16, 16)).astype(np.float32)
    pairs = np.array([[0, 1, 1], [2, 3, 0], [4, 5, 1], [6, 7, 0]])
    suffixes = ["yes", "no", "yes", "no"]
    opt = torch.optim.AdamW([p for p in verifier.model.parameters() if p.requires_grad], lr=2e-2)
    verifier.model.train()
    first = verifier.loss(images, pairs, suffixes).item()
    for _ in range(20):
        loss = verifier.loss(images, pairs, suffixes)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert verifier.loss(images, pairs, suffixes).item() < 0.7 * first
    scores = verifier.scores(images, pairs)
    assert scores.shape == (4,) and np.all((scores > 0) & (scores < 1))
    answers = verifier.answer(images, pairs[:2])
    assert len(answers) == 2 and all(a["decision"] in ("Yes", "No", "Unknown", "Both") for a in answers)


def test_missing_pretrained_checkpoint_says_what_to_download(tmp_path):
    with pytest.raises(FileNotFoundError, match="paligemma-3b-pt-224"):
        load_base(VLMConfig(pretrained=str(tmp_path / "no_such_model")))
