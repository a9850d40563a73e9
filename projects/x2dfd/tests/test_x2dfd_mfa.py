"""MFA: balanced accuracy and ranking on hand-made cases, and with a deterministic stub MLLM."""

from __future__ import annotations

import numpy as np
import pytest

from x2dfd import mfa


def test_balanced_accuracy_hand_case():
    # 4 fakes then 4 reals; question 0 says yes to 3/4 fakes and 1/4 reals -> (0.75 + 0.75) / 2 = 0.75
    is_fake = np.array([1, 1, 1, 1, 0, 0, 0, 0], bool)
    yes = np.array([[1, 1, 1, 0, 1, 0, 0, 0],    # 0.75
                    [1, 1, 1, 1, 1, 1, 1, 1],    # always yes: (1 + 0) / 2 = 0.5
                    [0, 0, 0, 0, 1, 1, 1, 1],    # inverted: 0
                    [1, 1, 0, 0, 0, 0, 0, 0]],   # (0.5 + 1) / 2 = 0.75
                   bool)
    assert np.allclose(mfa.balanced_accuracy(yes, is_fake), [0.75, 0.5, 0.0, 0.75])
    order, acc = mfa.rank_features(yes.astype(float), is_fake)
    assert order.tolist() == [0, 3, 1, 2]  # descending, ties keep the bank order
    assert np.allclose(acc, [0.75, 0.75, 0.5, 0.0])


def test_threshold_is_inclusive():
    is_fake = np.array([True, False])
    order, acc = mfa.rank_features(np.array([[0.5, 0.49]]), is_fake, threshold=0.5)
    assert acc[0] == 1.0
    _, acc = mfa.rank_features(np.array([[0.5, 0.49]]), is_fake, threshold=0.6)
    assert acc[0] == 0.5


def test_bad_inputs():
    with pytest.raises(ValueError, match="both real and fake"):
        mfa.rank_features(np.ones((2, 3)), np.ones(3, bool))
    with pytest.raises(ValueError, match="questions, images"):
        mfa.rank_features(np.ones((2, 4)), np.array([True, False, True]))


class StubMLLM:
    """Answers from image statistics: 'bright' questions from the mean intensity, 'red' ones from the red
    channel, anything else at random."""

    def p_yes(self, images, question, batch_size=64):
        x = images.astype(float) / 255
        if "bright" in question:
            return x.mean((1, 2, 3))
        if "red" in question:
            return x[..., 0].mean((1, 2))
        return np.random.default_rng(len(question)).random(len(images))


def test_assess_and_rank_with_stub():
    rng = np.random.default_rng(0)
    n = 40
    is_fake = np.arange(n) < n // 2
    images = rng.integers(0, 100, (n, 8, 8, 3)).astype(np.uint8)
    images[is_fake] += 100  # fakes are brighter (all channels)
    images[~is_fake, :, :, 0] = rng.integers(60, 140, (n // 2, 8, 8))  # reals: red around 0.4, overlapping
    bank = [{"question": q} for q in ("is it noisy?", "is it red?", "is it bright?")]
    p_yes = mfa.assess(StubMLLM(), images, is_fake, bank)
    assert p_yes.shape == (3, n)
    order, acc = mfa.rank_features(p_yes, is_fake, threshold=0.4)
    assert order[0] == 2 and acc[0] == 1.0  # brightness separates perfectly at 0.4
    assert acc[-1] < acc[0]


def test_question_bank():
    bank = mfa.load_question_bank()
    assert len(bank) >= 20 and all(q["question"].endswith(" Answer Yes or No.") for q in bank)
    assert {q["region"] for q in bank} >= {"eyes", "nose", "mouth", "skin", "blend"}
