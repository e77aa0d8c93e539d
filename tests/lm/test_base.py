import pytest
import torch

from app.lm import Vocab
from app.lm.base import build_examples
from tests.conftest import TINY_NAMES

VOCAB = Vocab.from_words(TINY_NAMES)


def examples_by_hand(words: list[str], block_size: int) -> tuple[list[list[int]], list[int]]:
    """The lecture's loop: slide a '.'-padded window over each word, one character at a time."""
    stoi, xs, ys = VOCAB.stoi, [], []
    for word in words:
        context = [0] * block_size
        for ch in [*word, "."]:
            xs.append(context)
            ys.append(stoi[ch])
            context = [*context[1:], stoi[ch]]
    return xs, ys


@pytest.mark.parametrize("block_size", [1, 3, 8])
@pytest.mark.parametrize("words", [TINY_NAMES, ["emma"], ["a", "", "bob"], [""], []])
def test_build_examples_matches_the_lecture_loop(words, block_size):
    X, Y = build_examples(words, VOCAB, block_size)
    xs, ys = examples_by_hand(words, block_size)
    assert X.dtype == Y.dtype == torch.long
    assert X.shape == (len(ys), block_size)
    assert X.tolist() == xs and Y.tolist() == ys


def test_emma_with_three_characters_of_context():
    X, Y = build_examples(["emma"], VOCAB, 3)
    contexts = ["".join(VOCAB.itos[i] for i in row) for row in X.tolist()]
    assert contexts == ["...", "..e", ".em", "emm", "mma"]
    assert "".join(VOCAB.itos[i] for i in Y.tolist()) == "emma."


def test_a_character_outside_the_vocabulary_is_named():
    with pytest.raises(ValueError, match=r"outside the vocabulary.*'1'"):
        build_examples(["emma", "b1ob"], VOCAB, 3)
