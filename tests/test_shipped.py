"""The shipped checkpoints in models/, whatever they are at test time: plausibility against
held-out names rates common names as ordinary and made-up strings as almost impossible, and the
default embedding plot puts the vowels together."""

from __future__ import annotations

import itertools
import math
import statistics
import subprocess
import sys
from functools import cache

import pytest

from app import plots
from app.checkpoints import load_checkpoint
from app.data import load_dataset, split_words
from app.lm.scoring import Plausibility, log_probs
from app.registry import plausibility_of
from app.training import held_out
from tests.live import ROOT

MODELS = sorted((ROOT / "models").glob("*.safetensors"))
COMMON = ["emma", "olivia", "liam", "noah"]  # among the most common names in ssa:2017
MADE_UP = ["xqzvk", "zzzzq"]
# kinds that must rate every common name as at least ordinary; the bigrams and a small 2-D model
# may honestly rate noah low ('oa' is a rare pair)
STRONG = ("mlp", "wavenet", "transformer")


@cache
def checkpoint(path):
    return load_checkpoint(path)


def reference(path) -> Plausibility:
    """The checkpoint's own held-out quantiles; for a checkpoint made before they were stored,
    the same ones computed here from its data and split, exactly as `namelab train` does."""
    ck = checkpoint(path)
    p = plausibility_of(ck)
    if p.available:
        return p
    parts = split_words(load_dataset(ck.meta.dataset.spec).words, ck.meta.split.seed)
    h = held_out(ck.model, parts.val, parts.train)
    return Plausibility(h.quantiles, h.n_names,
                        by_length=(h.length_centre, h.length_scale, h.length_quantiles))


def percentiles(path, names: list[str]) -> dict[str, float]:
    ck, p = checkpoint(path), reference(path)
    lps = log_probs(ck.model, names)
    return {n: p.percentile(-lp / (len(n) + 1), len(n))
            for n, lp in zip(names, lps, strict=True)}


MIN_EVAL = 40  # test names per length; a rarer length is pooled with its nearest lengths


# Known misses of the current calibration (issue 21, left open): the 1950s bigram's 3-letter
# names (73) and one length of the neural bigram's are outside 35..65.
FAIR_MISSES = {"bigram-1950s", "neural-bigram"}


@pytest.mark.parametrize("path", [
    pytest.param(p, marks=pytest.mark.xfail(strict=True, reason="calibration misses a length"))
    if p.stem in FAIR_MISSES else p for p in MODELS], ids=lambda p: p.stem)
def test_plausibility_is_fair_to_every_length(path):
    """Issue 21: short real names looked implausible (bob 2, mia 5 under the Transformer). On
    the checkpoint's own test names (held out, and not the validation names it is calibrated
    on), the median plausibility of each length 3..10 is between 35 and 65. A length with
    fewer than MIN_EVAL test names (an era bigram's 10-letter names) is judged with its nearest
    lengths' until there are MIN_EVAL."""
    ck = checkpoint(path)
    assert ck.meta.held_out is not None and ck.meta.held_out.by_length, "run namelab calibrate"
    parts = split_words(load_dataset(ck.meta.dataset.spec).words, ck.meta.split.seed)
    test = sorted(set(parts.test) - set(parts.train) - set(parts.val))
    got = percentiles(path, test)
    medians = {}
    for L in range(3, 11):
        near = sorted(test, key=lambda n: abs(len(n) - L))
        k = max(MIN_EVAL, sum(1 for n in test if len(n) == L))
        medians[L] = statistics.median(got[n] for n in near[:k])
    assert all(35 <= v <= 65 for v in medians.values()), medians


def test_served_plausibility_is_by_length():
    ck = checkpoint(ROOT / "models" / "transformer.safetensors")
    p = plausibility_of(ck)
    assert p.by_length is not None
    # a short real name is no longer far below a typical one
    assert all(v > 20 for v in percentiles(ROOT / "models" / "transformer.safetensors",
                                           ["bob", "mia", "ian", "amy"]).values())


@pytest.mark.parametrize("path", [
    pytest.param(p, marks=pytest.mark.xfail(strict=True, reason="by length, xqzvk is compared "
                                            "with the 1880s' few 5-letter names"))
    if p.stem == "bigram-1880s" else p for p in MODELS], ids=lambda p: p.stem)
def test_made_up_strings_are_below_the_first_percentile(path):
    assert all(v < 1 for v in percentiles(path, MADE_UP).values())


@pytest.mark.parametrize("path", [p for p in MODELS if p.stem in STRONG], ids=lambda p: p.stem)
def test_common_names_are_at_least_at_the_25th_percentile(path):
    got = percentiles(path, COMMON)
    assert all(v >= 25 for v in got.values()), got


def test_there_is_a_strong_model_and_era_bigrams_to_test():
    stems = {p.stem for p in MODELS}
    assert "mlp" in stems and {"bigram-1880s", "bigram-1950s", "bigram-2010s"} <= stems


def test_the_2d_model_groups_the_vowels_in_its_raw_plot():
    """Mean distance between two vowels < mean distance from a vowel to a consonant, in the
    table itself and among the markers as the default view draws them."""
    ck = checkpoint(ROOT / "models" / "mlp-2d.safetensors")
    table = ck.model.embedding_table().tolist()
    labels = ck.model.vocab.itos
    assert len(table[0]) == 2
    plot = plots.scatter(table, labels, "x", "y", equal=True)
    for pts in (dict(zip(labels, table, strict=True)),
                {p.label: (p.cx, p.cy) for p in plot.points}):
        vowels = [pts[v] for v in "aeiou"]
        consonants = [xy for k, xy in pts.items() if k not in "aeiou."]
        within = sum(math.dist(a, b) for a, b in itertools.combinations(vowels, 2)) / 10
        across = sum(math.dist(a, b) for a in vowels for b in consonants) / (5 * len(consonants))
        assert within < across


def test_loading_every_shipped_model_does_no_work_serving_does_not_need():
    """Start-up (issue 15): loading builds each model's shape on the meta device without
    initialising it and reads the weights straight into it. Initialising there, or copying
    into it with to_empty(), imports torch's compiler (torch._dynamo) or sympy: over a second
    each. Checked in a fresh interpreter, where nothing else has imported them."""
    code = ("import sys; from app.registry import Registry; "
            "r = Registry.load_dir(sys.argv[1]); assert r.models and not r.refused, r.refused; "
            "print(' '.join(m for m in ('torch._dynamo', 'sympy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code, str(ROOT / "models")], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == ""


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.stem)
def test_the_cards_top_ten_are_complete_within_the_effort_bound(path):
    """The model card's ten most probable names and `/top`'s 100 come from one search per model
    (app/services.py, `most_probable_of`): for every shipped model it finishes well within its
    count of prefixes, so no machine's speed decides how many names a card shows."""
    from app import services
    from app.lm.search import MAX_EXPANSIONS
    from app.params import MAX_TOP, TopParams
    from app.registry import LoadedModel

    m = LoadedModel.from_checkpoint(checkpoint(path))
    best = services.most_probable_of(m, None)
    assert len(best.names) == MAX_TOP and not best.exhausted and not best.timed_out
    assert best.expansions <= MAX_EXPANSIONS / 2  # a margin for retrained models
    top = services.top_names(m, TopParams(k=10))
    assert [t.name for t in top.names] == [x for x, _ in best.names[:10]]
    assert not top.exhausted and not top.timed_out
