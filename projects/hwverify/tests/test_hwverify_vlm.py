"""The tiny PaliGemma verifier built offline: pixels the model receives, tokens, labels, tuning, learning."""

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PaliGemmaProcessor, PreTrainedTokenizerFast, SiglipImageProcessor

from hwverify.config import VLMConfig
from hwverify.metrics import verification_metrics
from hwverify.vlm import (
    FEATURES,
    SPECIAL_TOKENS,
    WORDS,
    Lite0VisionTower,
    TrainableState,
    VLMVerifier,
    add_lora,
    answer_text,
    answer_token_ids,
    compose_pair,
    load_base,
    prepare_tuning,
    tiny_paligemma,
    vision_tower,
    word_tokenizer,
)

# google/paligemma-3b-pt-224's preprocessor_config.json (SigLIP), at a small size for speed.
REAL_SIGLIP = {"do_normalize": True, "do_rescale": True, "do_resize": True, "image_mean": [0.5, 0.5, 0.5],
               "image_std": [0.5, 0.5, 0.5], "resample": 3, "rescale_factor": 0.00392156862745098,
               "size": {"height": 32, "width": 32}}


def scan(h, w, ink_rows=None):
    """A white page (255) with a black (0) horizontal stroke."""
    img = np.full((h, w), 255, np.uint8)
    if ink_rows is not None:
        img[ink_rows, w // 4: 3 * w // 4] = 0
    return img

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


def test_compose_pair_known_on_top_questioned_below_from_originals():
    known, questioned = np.zeros((90, 300), np.uint8), np.full((50, 120), 255, np.uint8)
    img = compose_pair(known, questioned, 32)
    assert img.dtype == np.uint8 and img.shape == (32, 32, 3) and np.all(img[:16] == 0) and np.all(img[16:] == 255)
    with pytest.raises(ValueError, match="uint8"):
        compose_pair(known.astype(np.float32) / 255, questioned, 32)  # [0, 1] floats would be rescaled again


@pytest.mark.parametrize("do_rescale", [True, False])
def test_model_receives_paper_at_plus_one_and_ink_at_minus_one(do_rescale):
    """The pixel values that reach the vision tower, with the real SigLIP preprocessing (do_rescale=True:
    uint8 in) and with a processor that does not rescale (floats in [0, 1] in): paper +1, ink -1."""
    image_processor = SiglipImageProcessor(**{**REAL_SIGLIP, "do_rescale": do_rescale})
    image_processor.image_seq_length = 16
    processor = PaliGemmaProcessor(image_processor=image_processor, tokenizer=word_tokenizer())
    cfg = VLMConfig(pretrained=None, image_size=32, tiny_hidden=32, tiny_patch=8)
    verifier = VLMVerifier(tiny_paligemma(processor, cfg), processor, cfg, torch.device("cpu"))
    seen = []
    hook = vision_tower(verifier.model).register_forward_pre_hook(lambda m, args: seen.append(args[0].clone()))
    # Originals at their own resolution (not the ResNet's 64 x 64): a stroke in the middle of each sample.
    originals = [scan(120, 360, slice(40, 80)), scan(80, 200, slice(20, 60))]
    verifier.scores(originals, np.array([[0, 1, 1]]))
    hook.remove()
    pixels = seen[0]
    assert pixels.shape == (1, 3, 32, 32)
    assert pixels.max().item() == pytest.approx(1.0, abs=1e-3)
    assert pixels.min().item() == pytest.approx(-1.0, abs=2e-2)
    assert pixels[0, :, 0].mean().item() == pytest.approx(1.0, abs=1e-3)  # the top row is paper
    assert pixels[0, :, 8, 16].mean().item() < -0.9 and pixels[0, :, 24, 16].mean().item() < -0.9  # both strokes
    assert verifier.size == 32  # composed at the processor's own size


def test_processor_size_follows_a_224_checkpoint():
    from hwverify.vlm import processor_size

    assert processor_size(SiglipImageProcessor(**{**REAL_SIGLIP, "size": {"height": 224, "width": 224}})) == 224


def test_yes_no_ids_come_from_the_tokenized_training_suffix():
    """A SentencePiece-style tokenizer spells the suffix "yes" as "▁yes": the score must use that token."""
    vocab = {w: i for i, w in enumerate(dict.fromkeys((*SPECIAL_TOKENS, *WORDS, *("\u2581" + w for w in WORDS))))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>",
                                   unk_token="<unk>")
    image_processor = SiglipImageProcessor(**REAL_SIGLIP)
    image_processor.image_seq_length = 16
    processor = PaliGemmaProcessor(image_processor=image_processor, tokenizer=fast)
    yes_id, no_id = answer_token_ids(processor, "answer en same writer?")
    assert (yes_id, no_id) == tuple(fast.convert_tokens_to_ids(["\u2581yes", "\u2581no"]))
    assert yes_id != fast.convert_tokens_to_ids("yes")  # what convert_tokens_to_ids("yes") would have scored
    cfg = VLMConfig(pretrained=None, image_size=32, tiny_hidden=32, tiny_patch=8)
    verifier = VLMVerifier(tiny_paligemma(processor, cfg), processor, cfg, torch.device("cpu"))
    batch = verifier.batch([scan(20, 40)] * 2, np.array([[0, 1, 1], [0, 1, 0]]), ["yes", "no"])
    first_answer = [row[row != -100][0].item() for row in batch["labels"]]
    assert first_answer == [verifier.yes_id, verifier.no_id] == [yes_id, no_id]


def test_batch_has_image_tokens_and_prefix_masked_labels(verifier):
    images = (np.random.default_rng(0).random((4, 16, 16)) * 255).astype(np.uint8)
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
    assert (batch["token_type_ids"][answer] == 1).all()
    assert (batch["token_type_ids"][~answer & (ids != tok.pad_token_id)] == 0).all()


def test_only_lora_parameters_train_and_loss_decreases(verifier):
    trainable = [n for n, p in verifier.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert set(TrainableState(verifier.model).state_dict()) == {n.replace(".default", "") for n in trainable}
    images = (np.random.default_rng(1).random((8, 16, 16)) * 255).astype(np.uint8)
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


def ink_or_blank_pairs(rng, n):
    """Known: a random stroke; Questioned: a random stroke (label 1, "yes") or a blank page (label 0)."""
    originals, pairs = [], []
    for k in range(n):
        known = scan(24, 48, slice(*sorted(rng.choice(np.arange(2, 22), 2, replace=False))))
        label = k % 2
        questioned = scan(24, 48, slice(*sorted(rng.choice(np.arange(2, 22), 2, replace=False))) if label else None)
        originals += [known, questioned]
        pairs.append([2 * k, 2 * k + 1, label])
    return originals, np.array(pairs)


def test_full_fine_tune_learns_from_the_image_blank_vs_ink():
    """The prompt is the same for every pair, so only the pixels can tell the answers apart: a VLM that
    ignored its image (or saw a blank one, as the doubly rescaled [0, 1] input did) stays at AUC ~0.5.
    The tower is the frozen ImageNet Lite0 (the random tiny SigLIP needs far more steps than a test has)."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    cfg = VLMConfig(pretrained=None, image_size=32, tiny_hidden=32, vision_tower="lite0", tuning="full",
                    freeze_vision=True, lr=3e-3)
    base, processor = load_base(cfg)
    verifier = VLMVerifier(prepare_tuning(base, cfg), processor, cfg, torch.device("cpu"))
    originals, pairs = ink_or_blank_pairs(rng, 64)
    test_originals, test_pairs = ink_or_blank_pairs(rng, 40)
    opt = torch.optim.AdamW([p for p in verifier.model.parameters() if p.requires_grad], lr=cfg.lr)
    suffixes = np.array([answer_text(int(y)) for y in pairs[:, 2]])
    for _ in range(40):
        idx = rng.choice(len(pairs), 16, replace=False)
        verifier.train()
        loss = verifier.loss(originals, pairs[idx], list(suffixes[idx]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    scores = verifier.scores(test_originals, test_pairs)
    assert verification_metrics(test_pairs[:, 2], scores > 0.5, scores)["auc"] > 0.9


def test_lite0_tower_is_imagenet_weights_and_frozen_under_full_tuning():
    from shared.data.pretrained import efficientnet_lite0

    cfg = VLMConfig(pretrained=None, image_size=32, tiny_hidden=32, vision_tower="lite0", lite0_stage=2,
                    tuning="full", freeze_vision=True)
    base, processor = load_base(cfg)
    tower = vision_tower(base)
    assert isinstance(tower, Lite0VisionTower)
    reference = efficientnet_lite0(pretrained=True, features_only=True, out_indices=(2,))
    torch.testing.assert_close(tower.conv_stem.weight, reference.conv_stem.weight)  # real ImageNet weights
    assert processor.image_processor.image_seq_length == (32 // 8) ** 2
    model = prepare_tuning(base, cfg)
    assert not any(p.requires_grad for p in tower.parameters())
    assert all(p.requires_grad for n, p in model.named_parameters() if "vision_tower" not in n)
    verifier = VLMVerifier(model, processor, cfg, torch.device("cpu"))
    verifier.train()
    assert not tower.training and verifier.model.lm_head.training  # frozen BatchNorm keeps ImageNet statistics
    out = verifier.scores([scan(30, 60, slice(10, 20))] * 2, np.array([[0, 1, 1]]))
    assert out.shape == (1,) and np.isfinite(out).all()
