import math

import numpy as np
import pytest
import torch

from app.lm import Bigram, Vocab
from app.lm.bigram import BigramConfig
from app.lm.scoring import (
    MIN_LENGTH_NAMES,
    QUANTILES,
    Plausibility,
    length_quantiles,
    log_probs,
    nll_quantiles,
    score_names,
)

V = Vocab("ab")
# the table: see test_bigram
MODEL = Bigram(V, BigramConfig(smoothing=0)).fit(["ab", "abb", "b"])


def test_log_likelihood_is_the_sum_written_out():
    (s,) = score_names(MODEL, ["abb"])
    # P(a|.) P(b|a) P(b|b) P(.|b) = 2/3 * 1 * 1/4 * 3/4
    expected = math.log(2 / 3) + math.log(1) + math.log(1 / 4) + math.log(3 / 4)
    assert s.log_prob == pytest.approx(expected)
    assert s.n_chars == 4 and s.nll_per_char == pytest.approx(-expected / 4)
    assert s.perplexity == pytest.approx(math.exp(-expected / 4))
    assert [st["char"] for st in s.steps] == ["a", "b", "b", "."]
    assert [st["context"] for st in s.steps] == [".", "a", "b", "b"]
    assert [st["prob"] for st in s.steps] == pytest.approx([2 / 3, 1, 1 / 4, 3 / 4])
    assert [st["rank"] for st in s.steps] == [1, 1, 2, 1]
    assert log_probs(MODEL, ["abb", "b"]) == pytest.approx(
        [expected, math.log(1 / 3) + math.log(3 / 4)])


def test_batched_scores_equal_one_at_a_time():
    names = ["a", "ab", "bab", "abba"]
    together = [s.log_prob for s in score_names(MODEL, names)]
    alone = [score_names(MODEL, [n])[0].log_prob for n in names]
    assert together == pytest.approx(alone)


def test_mlp_context_window_is_padded(tiny_mlp):
    (s,) = score_names(tiny_mlp, ["emma"])
    assert [st["context"] for st in s.steps] == ["...", "..e", ".em", "emm", "mma"]
    total = sum(st["log_prob"] for st in s.steps)
    assert s.log_prob == pytest.approx(total)
    logits, _ = tiny_mlp(torch.tensor([[0, 0, 0]]))
    assert s.steps[0]["prob"] == pytest.approx(logits.softmax(1)[0, 5].item(), rel=1e-5)


def test_plausibility_reads_the_percentile_off_the_quantiles():
    q = [float(k) for k in range(QUANTILES)]  # reference NLLs 0, 1, ..., 100: P(NLL <= x) = x%
    p = Plausibility(q, n_names=101)
    assert p.percentile(-1.0) == 100.0  # better than every held-out name
    assert p.percentile(100.0) == 0.0 and p.percentile(1e9) == 0.0
    assert p.percentile(25.0) == pytest.approx(75.0)
    assert p.percentile(42.5) == pytest.approx(57.5)  # linear between quantiles
    assert p.percentile(99.5) < 1.0


def test_nll_quantiles_against_numpy():
    names = ["ab", "abb", "b", "abbb", "bb"]  # all possible under the unsmoothed table
    lps = log_probs(MODEL, names)
    nll = [-lp / (len(n) + 1) for n, lp in zip(names, lps, strict=True)]
    q = nll_quantiles(MODEL, names + ["ab"])  # duplicates count once
    assert q == pytest.approx(np.percentile(nll, range(QUANTILES)).tolist(), abs=1e-6)
    p = Plausibility(q, len(names))
    assert p.percentile(min(nll)) == pytest.approx(100.0)
    assert p.percentile(max(nll)) == 0.0


def test_plausibility_without_quantiles_is_none_with_a_reason():
    p = Plausibility(None, reason="no validation split")
    assert p.percentile(2.0) is None and not p.available and p.reason == "no validation split"
    with pytest.raises(ValueError):
        Plausibility(None)
    with pytest.raises(ValueError):
        Plausibility([1.0, 0.0] + [2.0] * (QUANTILES - 2), 5)  # not sorted


def test_length_quantiles_compare_a_name_with_names_of_its_length():
    """Oracle: with at least MIN_LENGTH_NAMES names of a length, its centre and scale are
    numpy's median and interquartile range of their NLL per character; and every length's
    median name sits at the 50th percentile."""
    g = torch.Generator().manual_seed(0)
    model = Bigram(V, BigramConfig(smoothing=1.0)).fit(["ab", "abb", "b", "aab"])
    names = sorted({"".join("ab"[i] for i in torch.randint(0, 2, (k,), generator=g).tolist())
                    for k in [3] * 8 + [6] * 300 + [8] * 400})
    centre, scale, zq = length_quantiles(model, names, 64)
    nll = {n: -lp / (len(n) + 1) for n, lp in zip(names, log_probs(model, names), strict=True)}
    p = Plausibility(nll_quantiles(model, names), len(names), by_length=(centre, scale, zq))
    for L in (6, 8):  # 2**3 = 8 names of 3 letters: pooled
        x = np.array([v for n, v in nll.items() if len(n) == L])
        assert len(x) >= MIN_LENGTH_NAMES
        assert centre[L - 1] == pytest.approx(np.median(x), abs=1e-6)
        assert scale[L - 1] == pytest.approx(np.percentile(x, 75) - np.percentile(x, 25),
                                             abs=1e-6)
        pct = [p.percentile(v, L) for n, v in nll.items() if len(n) == L]
        assert np.median(pct) == pytest.approx(50, abs=5)
    assert len(centre) == len(scale) == 64 and min(scale) > 0
    # the lengths in between and beyond are pooled: finite, and between their neighbours' ends
    assert all(math.isfinite(c) for c in centre)
