"""Names that fit: the automata against Python's `re`, the samplers against the enumerated
conditional distribution (every matching name scored), the knobs against a brute-force filter."""

import itertools
import math
import random
import re

import interegular
import pytest
import torch
from scipy.stats import chisquare

from app.lm import Bigram, Vocab
from app.lm.constraints import MAX_STATES, MAX_WORK, ConstraintError, TooLarge, build
from app.lm.sampling import (
    Draw,
    Knobs,
    SamplingOptions,
    drive,
    filter_logits,
    group_sampler,
)
from app.lm.scoring import log_probs
from tests.conftest import TINY_NAMES
from tests.lm.sampling_helpers import draw_names

BIGRAM = Bigram(Vocab.from_words(TINY_NAMES)).fit(TINY_NAMES)
VOCAB = BIGRAM.vocab


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# --- the automata --------------------------------------------------------------------------------

PATTERNS = ["ma.*(lyn|lee)", "[aeiou]+n", ".*(an|el).*", "a.{2,4}", "(em|ol)i?[a-z]*a",
            "[^aeiou]*", "x|y|zz", "e(m|v)*a"]


@pytest.mark.parametrize("pattern", PATTERNS)
def test_a_pattern_accepts_what_python_re_fullmatches(pattern):
    c = build(VOCAB, pattern=pattern, max_len=12)
    rng = random.Random(0)
    words = list(TINY_NAMES) + ["".join(rng.choice(VOCAB.chars) for _ in range(rng.randint(1, 9)))
                                for _ in range(3000)]
    words += ["malyn", "marylee", "eman", "aa", "abcd", "emmma", "ola", "zz"]
    for w in words:
        assert c.fits(w) == bool(re.fullmatch(pattern, w)), w


def test_the_simple_fields_intersect_with_the_pattern():
    c = build(VOCAB, prefix="e", suffix="a", contains="mm", pattern=".*[aeiou]{1}.*",
              min_len=4, max_len=6)
    for w in ["emma", "emmma", "emmaxa", "emmaxya", "ema", "amma", "emmb"]:
        want = (w.startswith("e") and w.endswith("a") and "mm" in w and 4 <= len(w) <= 6
                and re.fullmatch(".*[aeiou]{1}.*", w) is not None)
        assert c.fits(w) == want, w


@pytest.mark.parametrize(("args", "field", "words"), [
    ({"pattern": "(ab"}, "pattern", "not a valid regular expression"),
    ({"pattern": "^ab"}, "pattern", "no anchors"),
    ({"pattern": "a" * 101}, "pattern", "at most 100"),
    ({"pattern": "abc", "max_len": 2}, "pattern", "no name of 1 to 2 letters"),
    ({"suffix": "ab", "pattern": "a*"}, "pattern", "no name"),
    ({"suffix": "abc", "max_len": 2}, "suffix", "no name"),
    ({"min_len": 5, "max_len": 4}, "min_len", "min_len"),
])
def test_impossible_or_bad_constraints_name_their_field(args, field, words):
    with pytest.raises(ConstraintError, match=words) as e:
        build(VOCAB, **args)
    assert e.value.field == field


def test_a_pattern_whose_automaton_is_too_large_is_refused_by_a_count():
    with pytest.raises(TooLarge, match=f"more than {MAX_STATES} states") as e:
        build(VOCAB, pattern=".*a.{20}")
    assert e.value.field == "pattern"


LETTERS = Vocab("abcdefghijklmnopqrstuvwxyz")


@pytest.mark.parametrize("pattern", ["(a{0,50}){0,50}", "((a{0,99}){0,99}){0,99}",
                                     "([a-z]{0,30}){0,30}"])
def test_a_pattern_too_costly_to_compile_is_refused_by_its_count_of_work(pattern):
    """Nested repeats: small enough in characters, and the first two in states too, but
    compiling them took 10 to 33 s. The work is counted (MAX_WORK steps), not timed."""
    with pytest.raises(TooLarge, match=f"too large to compile: .* more than {MAX_WORK:,} steps"
                       ) as e:
        build(LETTERS, pattern=pattern)
    assert e.value.field == "pattern"


@pytest.mark.parametrize(("pattern", "states"), [("ma.*(lyn|lee)", 9), (".*a.{8}", 513),
                                                 ("[a-z]{2,12}", 13)])
def test_patterns_within_the_bounds_compile(pattern, states):
    """`.*a.{8}` is the largest of these (2^9 + 1 states): the bounds keep it."""
    c = build(LETTERS, pattern=pattern)
    assert c.automaton.n_states == states
    rng = random.Random(1)
    for w in ["malyn", "mara", "a" * 9, "ba" + "b" * 8, "b" * 13, *(
            "".join(rng.choice("amlyneb") for _ in range(rng.randint(1, 14)))
            for _ in range(2000))]:
        assert c.fits(w) == bool(re.fullmatch(pattern, w)), w


def test_a_refused_pattern_is_compiled_once(monkeypatch):
    """A refusal spends the whole budget of work: it is kept, whatever the other fields."""
    parsed = []
    real = interegular.parse_pattern
    monkeypatch.setattr(interegular, "parse_pattern", lambda p: parsed.append(p) or real(p))
    for max_len in (20, 30, 20):
        with pytest.raises(TooLarge, match="steps"):
            build(LETTERS, suffix="a", pattern="(b{0,50}){0,50}", max_len=max_len)
    assert parsed.count("(b{0,50}){0,50}") == 1


# --- exact sampling for the bigram ----------------------------------------------------------------


def enumerated(model, letters_before: int, suffix: str, prefix: str = ""):
    """Every name prefix + (letters_before letters) + suffix, and its probability under the
    model (scored with the scorer, no sampling code): the oracle."""
    names = [prefix + "".join(t) + suffix
             for t in itertools.product(VOCAB.chars, repeat=letters_before)]
    return names, [math.exp(lp) for lp in log_probs(model, names)]


def p_empty(model):
    """The model's probability of the empty name, which no sampler draws."""
    start = torch.zeros(1, model.block_size, dtype=torch.long)
    with torch.no_grad():
        return float(torch.softmax(model(start)[0].double(), dim=1)[0, 0])


def chi_square_p(samples: list[str], names: list[str], probs: list[float]) -> float:
    """The chi-square test's p-value of the sample counts against the normalised probs, the
    cells expected fewer than 5 times pooled into one."""
    total = sum(probs)
    counts = {x: 0 for x in names}
    for s in samples:
        counts[s] += 1  # a KeyError here is a sample that does not fit
    expected = [len(samples) * p / total for p in probs]
    big = [i for i, e in enumerate(expected) if e >= 5]
    small = [i for i, e in enumerate(expected) if e < 5]
    obs = [counts[names[i]] for i in big] + ([sum(counts[names[i]] for i in small)] * bool(small))
    exp = [expected[i] for i in big] + ([sum(expected[i] for i in small)] * bool(small))
    return chisquare(obs, exp).pvalue


@pytest.mark.parametrize(("letters", "suffix", "min_len", "max_len"),
                         [(2, "a", 3, 3), (2, "na", 4, 4), (1, "ia", 3, 3)])
def test_the_bigram_samples_the_enumerated_conditional_distribution(letters, suffix, min_len,
                                                                    max_len):
    names, probs = enumerated(BIGRAM, letters, suffix)
    c = build(VOCAB, suffix=suffix, min_len=min_len, max_len=max_len)
    o = SamplingOptions(constraint=c)
    (drawn,) = drive(BIGRAM, [group_sampler(BIGRAM, [Draw(20_000, gen(1))], o)])
    (got,) = drawn
    assert got.drawn == got.fits == 20_000  # exact: every draw fits
    # The exact mass: the enumerated sum, among non-empty names (no sampler draws '').
    assert got.mass == pytest.approx(sum(probs) / (1 - p_empty(BIGRAM)), rel=0, abs=1e-9)
    assert chi_square_p(got.names, names, probs) > 1e-3


def test_the_bigram_mass_with_a_prefix_and_a_pattern_is_the_enumerated_sum():
    names, probs = enumerated(BIGRAM, 3, "", prefix="e")
    keep = [(x, p) for x, p in zip(names, probs, strict=True) if re.fullmatch("e.[aeiou].", x)]
    c = build(VOCAB, prefix="e", pattern="e.[aeiou].", min_len=4, max_len=4)
    o = SamplingOptions(constraint=c)
    (got,) = drive(BIGRAM, [group_sampler(BIGRAM, [Draw(10, gen(2))], o)])[0]
    # With a prefix the first step is the prefix's: the mass is conditional on it.
    p_prefix = math.exp(log_probs(BIGRAM, ["e"])[0]) / float(
        torch.softmax(BIGRAM(torch.tensor([[VOCAB.stoi['e']]]))[0].double(), 1)[0, 0])
    assert got.mass == pytest.approx(sum(p for _, p in keep) / p_prefix, rel=0, abs=1e-9)
    assert all(re.fullmatch("e.[aeiou].", x) for x in got.names)


@pytest.mark.parametrize("model_name", ["bigram", "mlp"])
def test_max_len_conditions_on_the_length_and_never_cuts_a_name(model_name, tiny_mlp):
    """Issue 21: a name of 2 letters under max_len=2 is one the model ends there, with
    frequency P(name) / P(1 or 2 letters); cut-off longer names would be far too many."""
    model = BIGRAM if model_name == "bigram" else tiny_mlp
    names = [x for k in (1, 2) for x in enumerated(model, k, "")[0]]
    probs = [math.exp(lp) for lp in log_probs(model, names)]
    got = draw_names(model, 20_000, gen(3), max_len=2)
    assert all(1 <= len(x) <= 2 for x in got)
    if model is BIGRAM:
        assert len(got) == 20_000  # exact: no draw is lost
    assert chi_square_p(got, names, probs) > 1e-3


def test_knobs_apply_before_conditioning_the_exact_sampler():
    c = build(VOCAB, suffix="a", max_len=6)
    o = SamplingOptions(top_k=3, constraint=c)
    got = drive(BIGRAM, [group_sampler(BIGRAM, [Draw(300, gen(4))], o)])[0]
    (d,) = got
    first = torch.softmax(BIGRAM(torch.zeros(1, 1, dtype=torch.long))[0][0, 1:], 0)
    allowed = {VOCAB.itos[i + 1] for i in first.topk(3).indices.tolist()}
    assert {x[0] for x in d.names} <= allowed and all(x.endswith("a") for x in d.names)
    assert 0 < d.mass < 1


# --- rejection for the neural kinds ---------------------------------------------------------


def test_the_mlp_samples_the_enumerated_conditional_distribution(tiny_mlp):
    names, probs = enumerated(tiny_mlp, 2, "a")
    c = build(VOCAB, suffix="a", min_len=3, max_len=3)
    o = SamplingOptions(constraint=c)
    (got,) = drive(tiny_mlp, [group_sampler(tiny_mlp, [Draw(60_000, gen(5))], o)])[0]
    assert got.drawn == 60_000 and got.fits == len(got.names) > 500
    assert all(len(x) == 3 and x.endswith("a") for x in got.names)
    # The acceptance rate estimates the mass: within 4 standard errors of the enumerated one.
    mass = sum(probs) / (1 - p_empty(tiny_mlp))
    se = math.sqrt(mass * (1 - mass) / got.drawn)
    assert abs(got.fits / got.drawn - mass) < 4 * se
    assert chi_square_p(got.names, names, probs) > 1e-3


def test_same_seed_same_fitting_names_alone_and_in_a_group(tiny_mlp):
    import copy

    served = copy.deepcopy(tiny_mlp).freeze()
    c = build(VOCAB, suffix="a", max_len=8)
    sizes = [(50, 1), (200, 2), (3, 3)]
    o = SamplingOptions(constraint=c)
    alone = [drive(served, [group_sampler(served, [Draw(n, gen(s))], o)])[0][0]
             for n, s in sizes]
    (together,) = drive(served, [group_sampler(served, [Draw(n, gen(s)) for n, s in sizes], o)])
    assert together == alone
    for model in (BIGRAM, served):  # two runs driven together share forward passes only
        o = SamplingOptions(top_p=0.9, constraint=c)
        runs = [group_sampler(model, [Draw(n, gen(s))], o) for n, s in sizes]
        assert drive(model, runs) == [drive(model, [group_sampler(
            model, [Draw(n, gen(s))], o)])[0] for n, s in sizes]


# --- top-p and min-p -----------------------------------------------------------------------


def brute_force_kept(logits: torch.Tensor, knobs: Knobs) -> torch.Tensor:
    """The kept mask written out letter by letter from the documented definitions."""
    out = torch.zeros_like(logits, dtype=torch.bool)
    for r, row in enumerate(logits.tolist()):
        z = [x / knobs.temperature for x in row]
        keep = list(range(len(z)))
        if knobs.top_k is not None:
            kth = sorted(z, reverse=True)[knobs.top_k - 1]
            keep = [j for j in keep if z[j] >= kth]
        if knobs.top_p is not None:
            total = sum(math.exp(z[j]) for j in keep)
            p = {j: math.exp(z[j]) / total for j in keep}
            keep = [j for j in keep if sum(q for q in p.values() if q > p[j]) < knobs.top_p]
        if knobs.min_p > 0:
            best = max(math.exp(z[j]) for j in keep)
            keep = [j for j in keep if math.exp(z[j]) >= knobs.min_p * best]
        for j in keep:
            out[r, j] = True
    return out


@pytest.mark.parametrize("knobs", [Knobs(top_p=0.5), Knobs(top_p=0.9, temperature=0.7),
                                   Knobs(min_p=0.1), Knobs(min_p=0.3, temperature=1.5),
                                   Knobs(top_k=10, top_p=0.8, min_p=0.05), Knobs(top_p=1.0),
                                   Knobs(top_p=1e-6)])
def test_top_p_and_min_p_keep_what_the_brute_force_filter_keeps(knobs):
    logits = torch.randn(200, 27, generator=gen(6), dtype=torch.float64) * 2
    logits[:5, 3] = logits[:5, 4]  # ties
    _, kept = filter_logits(logits, knobs)
    assert torch.equal(kept, brute_force_kept(logits, knobs))
    assert kept.any(dim=1).all()  # the most likely letter always survives


def test_the_filtered_distribution_is_the_renormalised_kept_letters():
    from app.lm.sampling import next_letter_probs

    logits = torch.randn(50, 27, generator=gen(7), dtype=torch.float64)
    probs, kept = next_letter_probs(logits, Knobs(top_p=0.7, temperature=0.8))
    base = torch.softmax(logits / 0.8, dim=1)
    assert torch.allclose(probs.sum(dim=1), torch.ones(50, dtype=torch.float64))
    assert torch.allclose(probs, torch.where(kept, base, 0) / (base * kept).sum(1, True))


# --- the k most probable names that fit --------------------------------------------------


@pytest.mark.parametrize("model_name", ["bigram", "mlp"])
@pytest.mark.parametrize("args", [{"suffix": "a", "min_len": 2, "max_len": 3},
                                  {"pattern": "e.[aeiou]?", "max_len": 3},
                                  {"contains": "li", "max_len": 3}])
def test_the_top_fitting_names_are_the_brute_force_best(model_name, args, tiny_mlp):
    from app.lm.fitting_search import most_probable_fitting

    model = BIGRAM if model_name == "bigram" else tiny_mlp
    c = build(VOCAB, **args)
    every = ["".join(t) for n in range(1, 4) for t in itertools.product(VOCAB.chars, repeat=n)]
    fitting = [x for x in every if c.fits(x)]
    scored = sorted(zip(log_probs(model, fitting), fitting, strict=True), reverse=True)[:15]
    got = most_probable_fitting(model, 15, c)
    assert not got.exhausted
    # (float32 logits: a batch of other contexts may round the last bits differently)
    assert [lp for _, lp in got.names] == pytest.approx([lp for lp, _ in scored], abs=1e-5)
    assert all(c.fits(x) for x, _ in got.names)
