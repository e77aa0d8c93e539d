"""Expected values for the page tests, computed by hand from the tiny data (no model code)."""

from __future__ import annotations

from app.data import split_words
from tests.conftest import TINY_NAMES

TRAIN = split_words(TINY_NAMES, 42).train  # what the tiny models were trained on
V = 27  # '.' and a-z


def pair_count(a: str, b: str) -> tuple[int, int]:
    """(count of the pair a b, count of pairs starting with a) in the training names."""
    pair = row = 0
    for name in TRAIN:
        w = f".{name}."
        for x, y in zip(w, w[1:], strict=False):
            row += x == a
            pair += x == a and y == b
    return pair, row


def bigram_prob(a: str, b: str, smoothing: float = 1.0) -> float:
    """P(b | a) of the counting bigram with add-`smoothing` smoothing."""
    count, total = pair_count(a, b)
    return (count + smoothing) / (total + V * smoothing)


def tooltip(a: str, b: str) -> str:
    p = bigram_prob(a, b)
    text = f"{p:.4f}" if p >= 1e-4 else f"{p:.2e}"
    return f"{a} -> {b}: P = {text}, count {pair_count(a, b)[0]}"
