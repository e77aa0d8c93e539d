import copy
import itertools

import pytest
import torch

from app.lm import Bigram, Vocab
from app.lm.deadline import Deadline
from app.lm.sampling import Draw, drive, group_sampler
from tests.conftest import TINY_NAMES
from tests.lm.sampling_helpers import draw, draw_names, draw_scored
from tests.lm.sampling_helpers import options as sampling_options

BIGRAM = Bigram(Vocab.from_words(TINY_NAMES)).fit(TINY_NAMES)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("model_name", ["bigram", "mlp"])
def test_same_seed_same_names(model_name, tiny_mlp):
    model = BIGRAM if model_name == "bigram" else tiny_mlp
    a = draw_names(model, 50, gen(7))
    assert a == draw_names(model, 50, gen(7))
    assert a != draw_names(model, 50, gen(8))
    assert len(a) == 50 and all(1 <= len(x) <= 32 for x in a)


def test_does_not_touch_the_global_rng():
    torch.manual_seed(0)
    expected = torch.rand(1)
    torch.manual_seed(0)
    draw_names(BIGRAM, 20, gen())
    assert torch.equal(torch.rand(1), expected)


def test_prefix_max_len_and_top_k():
    names = draw_names(BIGRAM, 200, gen(), prefix="el", max_len=4)
    assert all(x.startswith("el") and 2 <= len(x) <= 4 for x in names)
    assert any(len(x) == 4 for x in names)
    # top_k=1 is greedy: every name is the argmax chain
    greedy = draw_names(BIGRAM, 5, gen(), top_k=1, max_len=10)
    P, itos = BIGRAM.bigram_probs(), BIGRAM.vocab.itos
    chain, ix = "", 0
    row = P[0].clone()
    row[0] = 0  # no empty names
    ix = int(row.argmax())
    while ix != 0 and len(chain) < 10:
        chain += itos[ix]
        ix = int(P[ix].argmax())
    assert greedy == [chain] * 5


def test_top_k_only_uses_the_k_most_likely_first_letters():
    P = BIGRAM.bigram_probs()[0].clone()
    P[0] = 0
    allowed = {BIGRAM.vocab.itos[i] for i in P.topk(3).indices.tolist()}
    assert {x[0] for x in draw_names(BIGRAM, 300, gen(), top_k=3)} <= allowed


def test_low_temperature_concentrates():
    cold = draw_names(BIGRAM, 300, gen(), temperature=0.1)
    hot = draw_names(BIGRAM, 300, gen(), temperature=3.0)
    assert len(set(cold)) < len(set(hot))


@pytest.mark.parametrize(("kwargs", "msg"), [
    ({"n": 0}, "n must be"), ({"temperature": 0}, "temperature"), ({"top_k": 28}, "top_k"),
    ({"max_len": 65}, "max_len"), ({"prefix": "abc", "max_len": 2}, "longer than max_len"),
])
def test_bad_arguments(kwargs, msg):
    args = {"n": 1, **kwargs}
    with pytest.raises(ValueError, match=msg):
        draw_names(BIGRAM, generator=gen(), **args)


def test_a_model_left_in_training_mode_samples_as_in_eval_mode():
    """Sampling switches dropout off before anything runs the model (the prefix included)."""
    from app.lm import MLP, MLPConfig

    m = MLP(BIGRAM.vocab, MLPConfig(block_size=3, n_embd=4, n_hidden=32, dropout=0.5))
    m.init_weights(gen(3))
    expected = draw_scored(m.eval(), 20, gen(), prefix="em")
    assert draw_scored(m.train(), 20, gen(), prefix="em") == expected


@pytest.fixture(scope="module")
def served(tiny_mlp):
    """The tiny MLP as the server holds it: frozen. Whether its rows are independent of the
    batch (whether `drive` shares the forward pass) depends on the CPU's kernels; the draws get
    what they get alone either way."""
    return copy.deepcopy(tiny_mlp).freeze()


def ticking(k: int) -> Deadline:
    """A deadline that passes at its k-th check (a sampler checks once before each step)."""
    calls = itertools.count(1)
    return Deadline(k - 0.5, clock=lambda: next(calls))


@pytest.mark.parametrize("options", [{}, {"temperature": 0.7, "top_k": 4},
                                     {"prefix": "a", "max_len": 5}, {"temperature": 0.01}])
def test_a_group_gives_each_draw_exactly_what_it_gets_alone(served, options):
    """Names and log-probabilities, to the bit: the group shares only the arithmetic."""
    sizes = [(1, 3), (20, 4), (7, 5), (300, 6)]
    alone = [draw_scored(served, n, gen(seed), **options) for n, seed in sizes]
    (together,) = drive(served, [group_sampler(
        served, [Draw(n, gen(seed)) for n, seed in sizes], sampling_options(served, **options))])
    assert [(d.names, d.log_probs) for d in together] == alone


def test_each_draw_of_a_group_stops_at_its_own_deadline(served):
    draws = [(20, 1, ticking(3)), (20, 2, None), (9, 3, ticking(1))]
    alone = [draw_scored(served, n, gen(seed), deadline=d and ticking(k))
             for (n, seed, d), k in zip(draws, (3, 0, 1), strict=True)]
    (together,) = drive(served, [group_sampler(
        served, [Draw(n, gen(seed), d) for n, seed, d in draws])])
    assert [(d.names, d.log_probs) for d in together] == alone
    cut, whole, none = together
    assert len(whole.names) == 20 and not whole.timed_out
    assert cut.names == [] and cut.timed_out  # stopped partway: only whole draws count
    assert none.names == [] and none.timed_out  # stopped before its first step


# --- a constraint open after its prefix: the lengths only, checked without the automaton ---

OPEN = [{}, {"prefix": "el", "max_len": 4}, {"prefix": "a", "min_len": 4, "max_len": 6},
        {"max_len": 3, "temperature": 0.6}, {"top_k": 4, "min_len": 5}]


@pytest.mark.parametrize("args", OPEN, ids=[str(a) for a in OPEN])
def test_a_constraint_open_after_its_prefix_draws_what_the_automaton_draws(
        args, tiny_mlp, monkeypatch):
    """The rejection sampler's shortcut when nothing beyond the prefix and the lengths is asked,
    against its general path (the automaton's states and distances) on the same seeds."""
    from app.lm.constraints import Constraint, build

    model = tiny_mlp  # a bigram samples exactly, without the rejection sampler
    lengths = {k: args[k] for k in ("prefix", "min_len", "max_len") if k in args}
    knobs = {k: v for k, v in args.items() if k not in lengths}
    constraint = build(model.vocab, **lengths)
    assert constraint.open_after_prefix
    shortcut = [draw(model, 60, gen(seed), constraint=constraint, **knobs) for seed in range(3)]
    monkeypatch.setattr(Constraint, "open_after_prefix", False)
    general = [draw(model, 60, gen(seed), constraint=build(model.vocab, **lengths), **knobs)
               for seed in range(3)]
    assert shortcut == general


@pytest.mark.parametrize("args, is_open", [
    ({}, True), ({"prefix": "el", "max_len": 4}, True), ({"prefix": "a", "min_len": 4}, True),
    ({"suffix": "a"}, False), ({"contains": "li"}, False), ({"pattern": "[a-m]+"}, False),
    ({"prefix": "an", "pattern": "an.*"}, True),  # a pattern that asks nothing more
])
def test_open_after_prefix_says_whether_anything_beyond_the_prefix_is_asked(args, is_open):
    from app.lm.constraints import build

    assert build(BIGRAM.vocab, **args).open_after_prefix == is_open
