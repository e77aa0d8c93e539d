"""The era-conditioned MLP: its layers against a plain-tensor oracle, its fast form against its
layers, its examples, condition dropout, the posterior against Bayes written out, and a model
of two made-up decades that tells them apart."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from app.data import Dataset, split_words
from app.data.decades import DECADES, SEXES, Record, Records
from app.domain import era
from app.lm import KINDS, Bigram, Vocab
from app.lm.base import build_examples
from app.lm.conditional import ANY_DECADE, ANY_SEX, ConditionalConfig, ConditionalMLP
from app.lm.config import OptimConfig
from app.lm.train import evaluate, fit
from tests.conftest import TINY_NAMES
from tests.lm.test_mlp import randomized

VOCAB = Vocab.from_words(TINY_NAMES)
CFG = ConditionalConfig(block_size=3, n_embd=4, n_hidden=16, n_layers=2, dropout=0.0,
                        cond_dropout=0.0)


def random_model(cfg: ConditionalConfig = CFG, seed: int = 0) -> ConditionalMLP:
    return randomized(ConditionalMLP(VOCAB, cfg), seed)


def oracle_logits(m: ConditionalMLP, ctx: torch.Tensor, decade: int, sex: int) -> torch.Tensor:
    """The layers written out with plain tensors: concat embeddings, W1 x + b1 + D[d] + S[s],
    then LayerNorm, tanh, the second layer, LayerNorm, tanh, the head."""
    linears = [x for x in m.hidden if isinstance(x, torch.nn.Linear)]
    norms = [x for x in m.hidden if isinstance(x, torch.nn.LayerNorm)]
    x = m.C.weight[ctx].reshape(len(ctx), -1)
    h = x @ linears[0].weight.T + linears[0].bias + m.D.weight[decade] + m.S.weight[sex]
    for k, norm in enumerate(norms):
        mu, var = h.mean(1, keepdim=True), h.var(1, unbiased=False, keepdim=True)
        h = torch.tanh((h - mu) / torch.sqrt(var + norm.eps) * norm.weight + norm.bias)
        if k + 1 < len(linears):
            h = h @ linears[k + 1].weight.T + linears[k + 1].bias
    return h @ m.head.weight.T + m.head.bias


def contexts(n: int = 300) -> torch.Tensor:
    real, _ = build_examples(TINY_NAMES, VOCAB, 3)
    noise = torch.randint(0, len(VOCAB), (n, 3), generator=torch.Generator().manual_seed(1))
    return torch.cat([real, noise])


@pytest.mark.parametrize(("decade", "sex"), [(0, 0), (5, 1), (13, 0), (ANY_DECADE, ANY_SEX)])
def test_layers_match_the_written_out_network(decade, sex):
    m, ctx = random_model(), contexts()
    cond = torch.tensor([decade, sex]).expand(len(ctx), 2)
    want = oracle_logits(m, ctx, decade, sex)
    torch.testing.assert_close(m.layer_logits(torch.cat([ctx, cond], 1)), want)
    torch.testing.assert_close(m.conditioned(decade, sex).layer_logits(ctx), want)


def test_plain_contexts_are_any_decade_and_sex():
    m, ctx = random_model(), contexts()
    torch.testing.assert_close(m.layer_logits(ctx), oracle_logits(m, ctx, ANY_DECADE, ANY_SEX))
    with pytest.raises(ValueError, match="3 or 5 columns"):
        m.layer_logits(ctx[:, :2])


def test_the_frozen_fast_form_matches_the_layers_under_every_condition():
    m, ctx = random_model(), contexts()
    layers = {(d, s): m.conditioned(d, s).layer_logits(ctx).detach()
              for d in (0, 7, ANY_DECADE) for s in (0, 1, ANY_SEX)}
    m.freeze()
    for (d, s), want in layers.items():
        view = m.conditioned(d, s)
        assert view is m.conditioned(d, s)  # kept while frozen
        torch.testing.assert_close(view.logits(ctx), want, rtol=1e-4, atol=1e-4)
    # a batch of rows with mixed condition columns, as evaluation passes them
    cond = torch.tensor([[0, 0], [7, 1], [ANY_DECADE, ANY_SEX]]).repeat(len(ctx), 1)[:len(ctx)]
    got = m.logits(torch.cat([ctx, cond], 1))
    want = torch.stack([layers[tuple(c)][i] for i, c in enumerate(cond.tolist())])
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_examples_carry_each_records_condition():
    m = random_model()
    words = [Record.of("ab", 3, 1), "cab", Record.of("a", 13, 0)]
    X, Y = m.examples(words)
    assert X.shape == (3 + 4 + 2, 5) and len(Y) == 9
    assert X[:, 3:].tolist() == [[3, 1]] * 3 + [[ANY_DECADE, ANY_SEX]] * 4 + [[13, 0]] * 2
    plain, _ = build_examples(["ab", "cab", "a"], VOCAB, 3)
    assert torch.equal(X[:, :3], plain)


def test_condition_dropout_hides_the_condition_in_training_only():
    cfg = ConditionalConfig(**{**CFG.__dict__, "cond_dropout": 1.0})
    m, ctx = random_model(cfg), contexts()
    cond = torch.tensor([4, 0]).expand(len(ctx), 2)
    any_ = oracle_logits(m, ctx, ANY_DECADE, ANY_SEX)
    m.train()
    torch.testing.assert_close(m.layer_logits(torch.cat([ctx, cond], 1)), any_)
    m.eval()
    torch.testing.assert_close(m.layer_logits(torch.cat([ctx, cond], 1)),
                               oracle_logits(m, ctx, 4, 0))


def test_note_dataset_keeps_the_share_of_births():
    m = random_model()
    uniform = m.prior.clone()
    m.note_dataset(["plain", "words"])  # no births: the prior stays uniform
    torch.testing.assert_close(m.prior, uniform)
    words = Records([Record.of("ab", 0, 0), Record.of("ab", 13, 1)])
    words.births = [[40] + [0] * 13, [0] * 13 + [60]]
    m.note_dataset(words)
    want = torch.zeros(2, 14, dtype=torch.float64)
    want[0, 0], want[1, 13] = 0.4, 0.6
    torch.testing.assert_close(m.prior, want)
    assert uniform[0, 0] == 1 / 28


# --- two made-up decades: the 1880s name only a/b, the 1930s only x/y ---

def synthetic_records(n: int = 300) -> Records:
    """Names of a/b in the 1880s, of x/y in the 1930s; as many births in each."""
    g = torch.Generator().manual_seed(5)
    out = Records()
    for i in range(n):
        length = int(torch.randint(2, 7, (1,), generator=g))
        letters, decade = ("ab", 0) if i % 2 == 0 else ("xy", 5)
        ix = torch.randint(0, 2, (length,), generator=g).tolist()
        out.append(Record.of("".join(letters[k] for k in ix), decade, i % 4 // 2))
    out.births = [[n, 0, 0, 0, 0, n, *[0] * 8], [n, 0, 0, 0, 0, n, *[0] * 8]]
    return out


@pytest.fixture(scope="module")
def two_eras() -> ConditionalMLP:
    records = synthetic_records()
    vocab = Vocab.from_words([*TINY_NAMES, *records])
    cfg = ConditionalConfig(block_size=3, n_embd=8, n_hidden=32, n_layers=1, dropout=0.0,
                            cond_dropout=0.2)
    model, _ = fit(KINDS["conditional"], vocab, split_words(records), cfg,
                   OptimConfig(steps=400, batch_size=64, warmup=20, eval_interval=100))
    model.note_dataset(records)
    return model.freeze()


def test_a_name_made_of_one_decades_letters_is_placed_in_that_decade(two_eras):
    ab, xy = era.eras(two_eras, ["abba", "xyxyy"], "records")  # no births elsewhere
    assert ab.decade == 1880 and ab.by_decade[0] > 0.95
    assert xy.decade == 1930 and xy.by_decade[5] > 0.95
    assert xy.sentence.startswith("sounds most like the 1930s (")
    # uniform: the twelve decades without a name keep the untrained (zero) condition rows, so
    # they share some mass; the decade of the letters still wins, and by far over the other
    ab, xy = era.eras(two_eras, ["abba", "xyxyy"], "uniform")
    assert ab.decade == 1880 and ab.by_decade[0] > 20 * ab.by_decade[5]
    assert xy.decade == 1930 and xy.by_decade[5] > 20 * xy.by_decade[0]


def test_the_posterior_is_bayes_over_the_per_condition_scores(two_eras):
    names = ["abba", "xy", "axby"]
    for prior in era.PRIORS:
        got = era.eras(two_eras, names, prior)
        lprior = (two_eras.prior.log() if prior == "records"
                  else torch.full((2, 14), -math.log(28), dtype=torch.float64))
        for name, e in zip(names, got, strict=True):
            # log P(name | d, s): every letter's log-probability through the layers, summed
            X, Y = build_examples([name], two_eras.vocab, 3)
            joint = torch.empty(2, 14, dtype=torch.float64)
            for s in range(2):
                for d in range(14):
                    cond = torch.tensor([d, s]).expand(len(X), 2)
                    logits = two_eras.layer_logits(torch.cat([X, cond], 1)).double()
                    lp = F.log_softmax(logits, 1).gather(1, Y[:, None]).sum()
                    joint[s, d] = lp + lprior[s, d]
            want = (joint - torch.logsumexp(joint.flatten(), 0)).exp()
            post = torch.tensor(e.posterior, dtype=torch.float64)
            assert abs(post.sum().item() - 1) < 1e-9
            torch.testing.assert_close(post, want, rtol=1e-4, atol=1e-7)
            s, d = divmod(int(want.argmax()), 14)
            assert (e.sex, e.decade) == (SEXES[s], DECADES[d])


def test_the_records_prior_moves_the_posterior(two_eras):
    """Half the synthetic births are of each decade but the prior is zero elsewhere: under it
    no probability goes to a decade without records."""
    (e,) = era.eras(two_eras, ["ab"], "records")
    assert sum(e.by_decade[d] for d in range(14) if d not in (0, 5)) == 0


def test_per_decade_nll_beats_the_decade_bigram_on_made_up_decades(two_eras):
    records = synthetic_records()
    split = split_words(records)
    rows = era.per_decade(two_eras, split.train, split.val)
    assert [r.decade for r in rows] == [1880, 1930]
    for r in rows:
        assert r.model_nll == pytest.approx(evaluate(two_eras, [w for w in split.val
                                                                if w.decade == (r.decade - 1880)
                                                                // 10]))
        assert r.bigram_nll > 0 and r.n_words > 0


def test_the_era_check_counts_hits_and_the_baseline(two_eras):
    held = {"abab": 0, "bba": 0, "xyx": 5}
    check = era.era_check(two_eras, held, "uniform")
    assert (check.n_names, check.top1, check.top3, check.mae) == (3, 1.0, 1.0, 0.0)
    assert check.baseline_decade == 1880
    assert check.baseline_top1 == pytest.approx(2 / 3)
    assert check.baseline_mae == pytest.approx(5 / 3)


def test_the_checkpoint_round_trips_the_prior_and_the_conditions(tmp_path, monkeypatch):
    from app.store import training
    from app.store.checkpoints import load_checkpoint

    records = synthetic_records(120)
    monkeypatch.setattr(training, "load_dataset",
                        lambda spec: Dataset(spec=spec, words=records))
    kind = KINDS["conditional"]
    result = training.train_to_checkpoint("conditional", "synthetic", tmp_path, "era",
                                          config=kind.tiny, training=kind.tiny_training)
    again = load_checkpoint(result.path).model
    torch.testing.assert_close(again.prior, result.model.prior)
    assert again.prior[0, 0] > 0 and abs(float(again.prior.sum()) - 1) < 1e-12
    ctx = torch.randint(0, len(again.vocab), (50, 3), generator=torch.Generator().manual_seed(2))
    result.model.freeze()
    for d, s in ((0, 1), (5, 0), (ANY_DECADE, ANY_SEX)):
        torch.testing.assert_close(again.conditioned(d, s).logits(ctx),
                                   result.model.conditioned(d, s).logits(ctx))


# --- examples drawn in proportion to births**births_weight ---

def counted(pairs: list[tuple[Record, int]]) -> Records:
    out = Records(r for r, _ in pairs)
    out.counts = [n for _, n in pairs]
    out.births = [[0] * 14, [0] * 14]
    for r, n in pairs:
        out.births[r.sex][r.decade] += n
    return out


def test_each_row_weighs_its_records_births_to_the_power_births_weight():
    words = counted([(Record.of("ab", 3, 1), 9), (Record.of("cab", 0, 0), 4)])
    for w, want in ((1.0, [9.0] * 3 + [4.0] * 4), (0.5, [3.0] * 3 + [2.0] * 4)):
        m = random_model(ConditionalConfig(**{**CFG.__dict__, "births_weight": w}))
        got = m.example_weights(words)
        assert len(got) == len(m.examples(words)[0])  # a weight per row of its examples
        torch.testing.assert_close(got, torch.tensor(want, dtype=torch.float64))
    assert random_model(ConditionalConfig(**{**CFG.__dict__, "births_weight": 0.0})
                        ).example_weights(words) is None
    assert random_model().example_weights(["ab", "cab"]) is None  # words without births


def test_births_weight_0_trains_exactly_as_without_births():
    """births_weight 0 draws today's minibatches: the same weights as the same records
    without their births, to the bit."""
    words = synthetic_records(120)
    with_births = counted([(r, 1 + 7 * i) for i, r in enumerate(words)])
    vocab = Vocab.from_words(words)
    cfg = ConditionalConfig(**{**CFG.__dict__, "births_weight": 0.0})
    run = OptimConfig(steps=30, batch_size=16, warmup=5, eval_interval=10)
    states = [fit(KINDS["conditional"], vocab, split_words(w), cfg, run)[0].state_dict()
              for w in (words, with_births)]
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    weighted = fit(KINDS["conditional"], vocab, split_words(with_births),
                   ConditionalConfig(**{**CFG.__dict__, "births_weight": 1.0}), run)[0]
    assert not torch.equal(weighted.state_dict()["D.weight"], states[0]["D.weight"])


def one_name_of_two_decades() -> Records:
    """'xoxo' given 1000 times in the 1880s and once in the 1930s; forty filler names of a/b,
    each in both decades, 10 births each in the 1880s and 200 in the 1930s: the 1930s hold
    most births (the records' prior favours them), and one record of 'xoxo' each."""
    g = torch.Generator().manual_seed(9)
    fillers = ["".join("ab"[k] for k in torch.randint(0, 2, (int(n),), generator=g).tolist())
               for n in torch.randint(3, 7, (40,), generator=g)]
    pairs = [(Record.of("xoxo", 0, 0), 1000), (Record.of("xoxo", 5, 0), 1)]
    for f in fillers:
        pairs += [(Record.of(f, 0, 0), 10), (Record.of(f, 5, 0), 200)]
    return counted(pairs)


@pytest.mark.parametrize(("births_weight", "decade", "at_least"),
                         [(1.0, 1880, 0.95), (0.0, 1930, 0.8)])
def test_a_name_given_mostly_in_one_decade_is_placed_there_when_weighted(births_weight,
                                                                         decade, at_least):
    """Oracle: P(xoxo | 1880s) = 1000/1400, P(xoxo | 1930s) = 1/8001 of the babies; the
    records' prior 1400:8001. Bayes puts xoxo in the 1880s (1000 against 1). Unweighted, each
    decade holds xoxo once in 41 records, and the prior alone moves it to the 1930s (85%)."""
    records = one_name_of_two_decades()
    vocab = Vocab.from_words(records)
    cfg = ConditionalConfig(block_size=3, n_embd=8, n_hidden=32, n_layers=1, dropout=0.0,
                            cond_dropout=0.2, births_weight=births_weight)
    model, _ = fit(KINDS["conditional"], vocab, split_words(records, None), cfg,
                   OptimConfig(steps=300, batch_size=64, warmup=20, eval_interval=100))
    model.note_dataset(records)
    (e,) = era.eras(model.freeze(), ["xoxo"], "records")
    assert e.decade == decade and max(e.by_decade) > at_least, e.by_decade


def test_the_nll_per_baby_is_that_of_each_record_repeated_its_births_times(two_eras):
    records = synthetic_records(40)
    births = [1 + i % 5 for i in range(len(records))]
    repeated = [r for r, n in zip(records, births, strict=True) for _ in range(n)]
    assert era.births_nll(two_eras, records, births) == pytest.approx(
        evaluate(two_eras, repeated), rel=1e-6)
    bigram = Bigram(two_eras.vocab).fit(records, births)
    torch.testing.assert_close(bigram.counts, Bigram(two_eras.vocab).fit(repeated).counts)
    assert era.births_nll(bigram, records, births) == pytest.approx(
        evaluate(bigram, repeated), rel=1e-9)
