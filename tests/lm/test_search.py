import itertools
import math

import pytest

from app.lm import Bigram, Vocab
from app.lm.bigram import BigramConfig
from app.lm.scoring import log_probs
from app.lm.search import most_probable

VOCAB = Vocab("abc")
MODEL = Bigram(VOCAB, BigramConfig(smoothing=0.5)).fit(
    ["ab", "abc", "ca", "bac", "a", "cab", "abba"])


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


def every_name(letters: str, max_len: int) -> list[str]:
    return ["".join(p) for n in range(1, max_len + 1)
            for p in itertools.product(letters, repeat=n)]


@pytest.mark.parametrize("batch", [1, 7, 256])
def test_batching_and_pruning_never_change_the_names(tiny_mlp, batch):
    """Against every name of up to 3 letters scored one by one: the same 40, in order, whatever
    the batch (a batch expands prefixes behind finished names; the pruning drops what can no
    longer be popped in time)."""
    names = every_name(tiny_mlp.vocab.chars, 3)
    best = sorted(zip(log_probs(tiny_mlp, names), names, strict=True), reverse=True)[:40]
    result = most_probable(tiny_mlp, 40, max_len=3, batch=batch)
    assert [n for n, _ in result.names] == [n for _, n in best]
    assert [lp for _, lp in result.names] == pytest.approx([lp for lp, _ in best], rel=1e-5)
    assert not result.exhausted and not result.timed_out


def test_the_effort_bound_is_a_count_that_gives_the_same_names_every_time(tiny_mlp):
    cut = most_probable(tiny_mlp, 100, max_len=10, max_expansions=200, batch=16)
    assert cut.exhausted and not cut.timed_out and 200 <= cut.expansions < 200 + 16
    again = most_probable(tiny_mlp, 100, max_len=10, max_expansions=200, batch=16)
    assert again == cut
    full = most_probable(tiny_mlp, 100, max_len=10)
    assert cut.names == full.names[: len(cut.names)]  # exact as far as it got


def test_the_default_effort_bound_is_read_when_the_search_runs(tiny_mlp, monkeypatch):
    from app.lm import search

    monkeypatch.setattr(search, "MAX_EXPANSIONS", 50)
    assert most_probable(tiny_mlp, 100).expansions < 50 + search.BATCH


def test_impossible_names_are_never_returned():
    """A bigram without smoothing gives 0 to unseen pairs: only the names the data allows come
    back, every one of them (brute force), and then the search says it ran out."""
    model = Bigram(VOCAB, BigramConfig(smoothing=0.0)).fit(["ab", "ba"])
    possible = [(lp, n) for lp, n in brute_force_of(model, 4) if lp > -math.inf]
    result = most_probable(model, 50, max_len=4)
    assert {n for n, _ in result.names} == {n for _, n in possible}
    assert [lp for _, lp in result.names] == pytest.approx(sorted((lp for lp, _ in possible),
                                                                  reverse=True))
    assert result.exhausted and not result.timed_out and len(result.names) < 50


def brute_force_of(model, max_len):
    names = every_name("abc", max_len)
    return list(zip(log_probs(model, names), names, strict=True))
