import itertools
import math

import pytest

from app.lm import Bigram, Vocab
from app.lm.scoring import log_probs
from app.lm.search import most_probable

VOCAB = Vocab("abc")
MODEL = Bigram(VOCAB, smoothing=0.5).fit(["ab", "abc", "ca", "bac", "a", "cab", "abba"])


def brute_force(max_len, prefix=""):
    names = ["".join(p) for n in range(1, max_len + 1) for p in itertools.product("abc", repeat=n)]
    names = [n for n in names if n.startswith(prefix)]
    return sorted(zip(log_probs(MODEL, names), names, strict=True), reverse=True)


@pytest.mark.parametrize("prefix", ["", "b"])
def test_matches_brute_force_enumeration(prefix):
    expected = brute_force(6, prefix)[:10]
    result = most_probable(MODEL, 10, prefix=prefix, max_len=6)
    assert not result.exhausted
    assert [n for n, _ in result.names] == [n for _, n in expected]
    assert [lp for _, lp in result.names] == pytest.approx([lp for lp, _ in expected])


def test_decreasing_and_bounded(tiny_mlp):
    result = most_probable(tiny_mlp, 20)
    lps = [lp for _, lp in result.names]
    assert lps == sorted(lps, reverse=True) and len(lps) == 20
    assert lps == pytest.approx(log_probs(tiny_mlp, [n for n, _ in result.names]))
    cut = most_probable(tiny_mlp, 1000, max_expansions=10)
    assert cut.exhausted and len(cut.names) < 1000
    assert all(math.isfinite(lp) for _, lp in cut.names)
