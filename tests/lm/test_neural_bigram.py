import dataclasses

import pytest
import torch
import torch.nn.functional as F

from app.data import load_dataset, split_words
from app.lm import Bigram, NeuralBigram, Vocab
from app.lm.base import build_examples
from app.lm.bigram import BigramConfig
from app.lm.neural_bigram import KIND, NeuralBigramConfig
from app.lm.train import evaluate, fit
from tests.conftest import SHARED_NAMES, TINY_NAMES
from tests.lm.sampling_helpers import draw_names

VOCAB = Vocab.from_words(TINY_NAMES)


def train_neural_bigram(vocab, split, reg: float = 0.001, steps: int = 300):
    """The kind's own training (full-batch Adam, lr 0.5), with the given reg and steps."""
    return fit(KIND, vocab, split, NeuralBigramConfig(reg=reg),
               dataclasses.replace(KIND.training, steps=steps))


def test_logits_are_one_hot_times_w():
    m = NeuralBigram(VOCAB)
    m.init_weights(torch.Generator().manual_seed(0))
    X, _ = build_examples(["emma"], VOCAB, 1)
    one_hot = F.one_hot(X[:, -1], len(VOCAB)).float()
    assert torch.allclose(m(X)[0], one_hot @ m.W)


def test_the_full_batch_loss_from_counts_is_the_cross_entropy_of_every_example():
    m = NeuralBigram(VOCAB)
    m.init_weights(torch.Generator().manual_seed(0))
    X, Y = build_examples(TINY_NAMES, VOCAB, 1)
    grouped = m.full_batch_loss(X, Y)
    assert grouped.item() == pytest.approx(F.cross_entropy(m(X)[0], Y).item(), rel=1e-6)
    grouped.backward()
    counted = m.W.grad.clone()
    m.W.grad = None
    F.cross_entropy(m(X)[0], Y).backward()
    torch.testing.assert_close(counted, m.W.grad, rtol=1e-4, atol=1e-7)


def test_the_penalty_is_reg_times_the_mean_square_of_w():
    m = NeuralBigram(VOCAB, NeuralBigramConfig(reg=0.25))
    m.init_weights(torch.Generator().manual_seed(0))
    assert m.penalty().item() == pytest.approx(0.25 * (m.W.detach() ** 2).mean().item())
    assert NeuralBigram(VOCAB, NeuralBigramConfig(reg=0)).penalty() is None


def test_without_regularisation_it_learns_the_count_table():
    split = split_words(TINY_NAMES, seed=None)
    model, history = train_neural_bigram(VOCAB, split, reg=0)
    counts = Bigram(VOCAB, BigramConfig(smoothing=0)).fit(TINY_NAMES)
    seen = counts.counts.sum(dim=1) > 0
    assert torch.allclose(model.bigram_probs()[seen], counts.bigram_probs()[seen], atol=2e-3)
    assert evaluate(model, TINY_NAMES) == pytest.approx(evaluate(counts, TINY_NAMES), abs=0.005)
    assert history.train[-1] < history.train[0] and history.step[-1] == 300


def test_regularisation_acts_like_smoothing():
    split = split_words(TINY_NAMES, seed=None)
    plain, _ = train_neural_bigram(VOCAB, split, reg=0)
    reg, _ = train_neural_bigram(VOCAB, split, reg=0.1)
    # unseen pairs get more probability with the penalty, as with additive smoothing
    unseen = Bigram(VOCAB, BigramConfig(smoothing=0)).fit(TINY_NAMES).counts == 0
    assert reg.bigram_probs()[unseen].mean() > 5 * plain.bigram_probs()[unseen].mean()


def test_training_and_sampling_are_reproducible():
    split = split_words(TINY_NAMES)
    a, _ = train_neural_bigram(VOCAB, split, steps=20)
    b, _ = train_neural_bigram(VOCAB, split, steps=20)
    assert torch.equal(a.W, b.W)
    g = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    assert draw_names(a, 30, g()) == draw_names(b, 30, g())


@pytest.mark.skipif(not SHARED_NAMES.exists(), reason="shared names.txt not present")
def test_names_txt_figures():
    words = load_dataset(str(SHARED_NAMES)).words
    vocab = Vocab.from_words(words)
    everything = split_words(words, seed=None)
    net, _ = train_neural_bigram(vocab, everything, reg=0)
    assert evaluate(net, words) == pytest.approx(2.4541, abs=0.005)
    split = split_words(words)
    net, _ = train_neural_bigram(vocab, split)
    smoothed = Bigram(vocab, BigramConfig(smoothing=1)).fit(split.train)
    assert evaluate(net, split.train) == pytest.approx(evaluate(smoothed, split.train), abs=0.03)
