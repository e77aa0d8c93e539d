"""Bounded work: sampling and search stop at a deadline with what they found. The deadlines here
run on a clock that ticks once per look (no real time, so no timed test)."""

from __future__ import annotations

import itertools

import pytest
import torch

from app.lm import Bigram, Vocab
from app.lm import deadline as deadlines
from app.lm.constraints import build
from app.lm.deadline import Deadline
from app.lm.sampling import Draw, Drawn, SamplingOptions, drive, group_sampler
from app.lm.search import most_probable
from tests.conftest import TINY_NAMES
from tests.lm.sampling_helpers import draw_scored

BIGRAM = Bigram(Vocab.from_words(TINY_NAMES)).fit(TINY_NAMES)
VOCAB = BIGRAM.vocab


def after_looks(k: int) -> Deadline:
    """A deadline that has not passed for k - 1 looks and has from the k-th on."""
    return Deadline(k, clock=itertools.count().__next__)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def drawn(model, draws: list[Draw], **options) -> list[Drawn]:
    (result,) = drive(model, [group_sampler(model, draws, SamplingOptions(**options))])
    return result


@pytest.mark.parametrize("steps", [1, 3, 5, 8])
@pytest.mark.parametrize("constrained", [False, True])
def test_a_draw_the_deadline_stops_partway_gives_no_names(tiny_mlp, steps, constrained):
    """Only whole draws count. The names finished when the deadline passes are the short ones
    (before, the answer here was every name of fewer than `steps` letters), and the rejected
    rows counted as drawn while the growing ones did not: the mass estimate ran low. The
    bigram is sampled exactly, the MLP by rejection."""
    options = {"constraint": build(VOCAB, suffix="a", max_len=20)} if constrained else {}
    for model in (BIGRAM, tiny_mlp):
        (whole,) = drawn(model, [Draw(300, gen(3))], **options)
        (cut,) = drawn(model, [Draw(300, gen(3), after_looks(steps + 1))], **options)
        assert whole.drawn == 300 and len(whole.names) > 0 and not whole.timed_out
        assert any(len(x) < steps for x in whole.names) or steps == 1  # what was kept before
        assert (cut.names, cut.drawn, cut.fits, cut.timed_out) == ([], 0, 0, True)
        assert cut.mass == whole.mass  # the bigram's exact mass does not depend on the draws


def test_a_draw_whose_rows_all_ended_before_its_deadline_is_whole(tiny_mlp):
    """In a group, a draw whose rows have all ended keeps them when its deadline passes while
    another draw's rows still grow; one look earlier, its row was growing: no names."""
    c = build(VOCAB, max_len=12)
    (alone,) = drawn(tiny_mlp, [Draw(1, gen(1))], constraint=c)
    (name,) = alone.names  # its row ended at step len(name), the look after its last letter
    for looks, whole in ((len(name) + 2, True), (len(name) + 1, False)):
        got, other = drawn(tiny_mlp, [Draw(1, gen(1), after_looks(looks)), Draw(200, gen(2))],
                           constraint=c)
        assert got.names == (alone.names if whole else []) and got.timed_out is not whole
        assert got.log_probs == pytest.approx(alone.log_probs if whole else [])
        assert other.drawn == 200 and max(len(x) for x in other.names) > looks  # still growing


def test_a_deadline_that_never_passes_changes_nothing(tiny_mlp):
    a = draw_scored(tiny_mlp, 50, gen(1))
    assert draw_scored(tiny_mlp, 50, gen(1), deadline=Deadline(3600)) == a


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
