"""Bounded work: sampling and search stop at a deadline with what they found. The deadlines here
run on a clock that ticks once per look (no real time, so no timed test)."""

from __future__ import annotations

import itertools

import pytest
import torch

from app.lm import Bigram, Vocab
from app.lm import deadline as deadlines
from app.lm.deadline import Deadline
from app.lm.sampling import sample_scored
from app.lm.search import most_probable
from tests.conftest import TINY_NAMES

BIGRAM = Bigram(Vocab.from_words(TINY_NAMES)).fit(TINY_NAMES)


def after_looks(k: int) -> Deadline:
    """A deadline that has not passed for k - 1 looks and has from the k-th on."""
    return Deadline(k, clock=itertools.count().__next__)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("steps", [1, 3, 5, 8])
def test_sampling_stops_at_the_deadline_with_the_names_finished_by_then(steps):
    full_names, full_lps = sample_scored(BIGRAM, 300, gen(3), max_len=20)
    names, lps = sample_scored(BIGRAM, 300, gen(3), max_len=20, deadline=after_looks(steps + 1))
    # `steps` forward passes ran: a name of L letters finishes at the pass after its last letter
    kept = [(x, lp) for x, lp in zip(full_names, full_lps, strict=True) if len(x) < steps]
    assert names == [x for x, _ in kept]
    assert lps == pytest.approx([lp for _, lp in kept])
    assert len(names) < 300


def test_a_deadline_that_never_passes_changes_nothing(tiny_mlp):
    a = sample_scored(tiny_mlp, 50, gen(1))
    assert sample_scored(tiny_mlp, 50, gen(1), deadline=Deadline(3600)) == a


def test_search_stops_at_the_deadline_with_the_best_found_so_far():
    full = most_probable(BIGRAM, 30, max_len=8, batch=4)
    cut = most_probable(BIGRAM, 30, max_len=8, batch=4, deadline=after_looks(40))
    assert not full.exhausted and cut.exhausted
    assert cut.timed_out and not full.timed_out
    assert 0 < len(cut.names) < 30
    assert cut.names == full.names[: len(cut.names)]  # exact as far as it got


def test_the_deadline_of_the_work_in_progress_is_ambient_and_scoped():
    assert deadlines.current() is None
    d = Deadline(1.0)
    with deadlines.bounded(d):
        assert deadlines.current() is d
    assert deadlines.current() is None
    assert not deadlines.passed(None)
    assert deadlines.passed(Deadline(0.0, clock=lambda: 5.0))
