import math

import pytest
import torch

from app.data import load_dataset, split_words
from app.lm import Bigram, Vocab
from app.lm.bigram import BigramConfig
from app.lm.train import evaluate
from tests.conftest import SHARED_NAMES

WORDS = ["ab", "abb", "b"]
V = Vocab("ab")


def test_counts_by_hand():
    m = Bigram(V, BigramConfig(smoothing=0)).fit(WORDS)
    # pairs: .a ab b.  .a ab bb b.  .b b.
    expected = torch.tensor([
        # .  a  b
        [0, 2, 1],  # .
        [0, 0, 2],  # a
        [3, 0, 1],  # b
    ], dtype=torch.float64)
    assert torch.equal(m.counts, expected)
    P = m.bigram_probs()
    assert P[0].tolist() == pytest.approx([0, 2 / 3, 1 / 3])
    assert P[2].tolist() == pytest.approx([3 / 4, 0, 1 / 4])


def test_smoothing_adds_to_every_cell():
    P = Bigram(V, BigramConfig(smoothing=1)).fit(WORDS).bigram_probs()
    assert P[1].tolist() == pytest.approx([1 / 5, 1 / 5, 3 / 5])
    assert torch.allclose(P.sum(dim=1), torch.ones(3))


def test_loss_is_mean_nll_per_character_written_out():
    m = Bigram(V, BigramConfig(smoothing=0)).fit(WORDS)
    # 'ab': P(a|.) P(b|a) P(.|b) = 2/3 * 1 * 3/4 ; over 3 characters (end token included)
    nll = -(math.log(2 / 3) + math.log(1) + math.log(3 / 4)) / 3
    assert evaluate(m, ["ab"]) == pytest.approx(nll)


def test_unseen_row_without_smoothing_is_uniform_not_nan():
    m = Bigram(Vocab("abc"), BigramConfig(smoothing=0)).fit(["ab"])
    assert m.bigram_probs()[3].tolist() == pytest.approx([0.25] * 4)


@pytest.mark.skipif(not SHARED_NAMES.exists(), reason="shared names.txt not present")
def test_seed_figure_2_4541_reproduces():
    words = load_dataset(str(SHARED_NAMES)).words
    m = Bigram(Vocab.from_words(words), BigramConfig(smoothing=0)).fit(words)
    assert evaluate(m, words) == pytest.approx(2.4541, abs=0.0005)


@pytest.mark.skipif(not SHARED_NAMES.exists(), reason="shared names.txt not present")
def test_smoothed_bigram_val_figure():
    words = load_dataset(str(SHARED_NAMES)).words
    split = split_words(words)
    m = Bigram(Vocab.from_words(words), BigramConfig(smoothing=1)).fit(split.train)
    assert evaluate(m, split.val) == pytest.approx(2.453, abs=0.002)
