"""Property tests (hypothesis) of the model invariants, for every model type.

For any valid name the log-probability is finite, <= 0 and the sum of its steps (checked against
an independent forward pass); the next-character probabilities sum to 1 over the vocabulary;
sampling honours n, prefix, max_len and the seed; raw input is scored or refused with
InvalidName, never anything else. Bounded and derandomized, so CI runs the same examples.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from app.domain import services
from app.domain.params import MAX_SEED, InvalidParam, SampleParams
from app.lm import KINDS
from app.lm.scoring import log_probs, score_names
from app.store.registry import Registry

MODELS = list(KINDS)  # conftest: a tiny model of every kind, named after it
LETTERS = "abcdefghijklmnopqrstuvwxyz"  # the tiny models' vocabulary (conftest: every letter)
bounded = hsettings(max_examples=40, derandomize=True, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

names = st.text(alphabet=LETTERS, min_size=1, max_size=24)
prefixes = st.text(alphabet=LETTERS, max_size=6)


@pytest.fixture(scope="module")
def registry(models_dir) -> Registry:
    registry = Registry.load_dir(models_dir)
    assert registry.names() == sorted(MODELS)
    assert str(registry.get("mlp").model.vocab) == "." + LETTERS
    return registry


def oracle_log_prob(model, name: str) -> float:
    """log P(name) written out: one forward pass per character, contexts built here."""
    stoi = model.vocab.stoi
    context, total = [0] * model.block_size, 0.0
    with torch.no_grad():
        for ch in [*name, "."]:
            logits, _ = model(torch.tensor([context]))
            total += torch.log_softmax(logits.double(), dim=1)[0, stoi[ch]].item()
            context = [*context[1:], stoi[ch]]
    return total


@pytest.mark.parametrize("kind", MODELS)
def test_log_prob_is_finite_nonpositive_and_the_sum_of_its_steps(registry, kind):
    model = registry.get(kind).model

    @bounded
    @given(name=names)
    def check(name):
        (s,) = score_names(model, [name])
        assert math.isfinite(s.log_prob) and s.log_prob <= 0
        assert len(s.steps) == len(name) + 1
        assert s.log_prob == pytest.approx(math.fsum(x["log_prob"] for x in s.steps), abs=1e-9)
        assert all(0 < x["prob"] <= 1 and x["log_prob"] == pytest.approx(math.log(x["prob"]))
                   for x in s.steps)
        assert s.log_prob == pytest.approx(oracle_log_prob(model, name), abs=1e-4)
        assert log_probs(model, [name]) == pytest.approx([s.log_prob], abs=1e-9)

    check()


@pytest.mark.parametrize("kind", MODELS)
def test_batched_log_probs_equal_one_at_a_time(registry, kind):
    model = registry.get(kind).model

    @bounded
    @given(batch=st.lists(names, min_size=1, max_size=8))
    def check(batch):
        alone = [log_probs(model, [n])[0] for n in batch]
        assert log_probs(model, batch) == pytest.approx(alone, abs=1e-6)

    check()


@pytest.mark.parametrize("kind", MODELS)
def test_next_character_probabilities_sum_to_one(registry, kind):
    """After any prefix w: sum over c of P(c | w), read off the scores of w+c and of w."""
    model = registry.get(kind).model

    @bounded
    @given(prefix=st.text(alphabet=LETTERS, min_size=1, max_size=12))
    def check(prefix):
        scored = score_names(model, [prefix + c for c in LETTERS] + [prefix])
        p_letters = [s.steps[len(prefix)]["prob"] for s in scored[:-1]]
        p_end = scored[-1].steps[-1]["prob"]  # P('.' | prefix)
        assert math.fsum(p_letters) + p_end == pytest.approx(1.0, abs=1e-5)

    check()
    with torch.no_grad():  # and at the start of a name, straight from the logits
        logits, _ = model(torch.zeros(1, model.block_size, dtype=torch.long))
    assert torch.softmax(logits.double(), dim=1).sum().item() == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("kind", MODELS)
def test_sampling_honours_n_prefix_max_len_and_seed(registry, kind):
    loaded = registry.get(kind)

    @bounded
    @given(n=st.integers(1, 30), prefix=prefixes, extra=st.integers(0, 20),
           seed=st.integers(0, MAX_SEED), temperature=st.floats(0.2, 5.0),
           top_k=st.none() | st.integers(1, 27))
    def check(n, prefix, extra, seed, temperature, top_k):
        max_len = max(1, len(prefix) + extra)
        params = SampleParams(n=n, seed=seed, temperature=temperature, top_k=top_k,
                              prefix=prefix.upper(), max_len=max_len)  # raw input: normalised
        result = services.sample_names(loaded, params)
        got = [x.name for x in result.names]
        assert result.seed == seed
        # Fewer than n only when the knobs leave (almost) no name of at most max_len letters:
        # a longer name is drawn again, never cut (issue 21).
        assert len(got) == n or (result.exhausted and (
            result.constraint_mass == 0 or result.drawn >= services.MAX_SAMPLE_DRAWS * n))
        for x in result.names:
            assert x.name.startswith(prefix)
            assert 1 <= len(x.name) <= max_len
            assert set(x.name) <= set(LETTERS)
            assert x.in_training_set == (x.name in loaded.training_set)
            assert x.in_data == (x.name in loaded.data_set)
        assert [x.log_prob for x in result.names] == pytest.approx(log_probs(loaded.model, got))
        again = services.sample_names(loaded, params)
        assert [x.name for x in again.names] == got  # same seed, same names

    check()


@pytest.mark.parametrize("kind", MODELS)
def test_unique_samples_are_distinct(registry, kind):
    loaded = registry.get(kind)

    @bounded
    @given(n=st.integers(1, 40), seed=st.integers(0, MAX_SEED),
           exclude=st.booleans())
    def check(n, seed, exclude):
        result = services.sample_names(loaded, SampleParams(
            n=n, seed=seed, unique=True, exclude_training=exclude, max_len=3))
        got = [x.name for x in result.names]
        assert len(set(got)) == len(got) <= n
        assert result.exhausted == (len(got) < n)
        assert not exclude or not any(x.in_data for x in result.names)

    check()


@pytest.mark.parametrize("kind", MODELS)
def test_any_input_is_scored_or_refused_with_the_name_and_its_index(registry, kind):
    loaded = registry.get(kind)

    @bounded
    @given(raw=st.text(max_size=30))
    def check(raw):
        try:
            (s,) = services.score(loaded, [raw])
        except InvalidParam as e:
            assert str(e) and e.field == "names" and e.index == 0 and e.value == raw
            return
        assert s.name == raw
        assert s.normalized and set(s.normalized) <= set(LETTERS)
        assert math.isfinite(s.log_prob) and s.log_prob <= 0
        assert 0 <= s.plausibility <= 100

    check()
