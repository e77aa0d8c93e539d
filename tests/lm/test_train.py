"""The gradient trainer, checked against an independent evaluation at every validation point.

Issue 10: every MLP trained on main stopped learning after its first validation pass, because
evaluation reused a fast inference form built from the weights of step 1000 (fused AdamW moves
weights without bumping their version counters). These tests run the real trainer with the
production optimiser and re-evaluate the weights of each step through the layers as written.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from app.data import load_dataset, split_words
from app.lm import KINDS, LanguageModel, NeuralBigram, Vocab
from app.lm.config import OptimConfig
from app.lm.train import evaluate, fit, minibatches, train

# Every kind trained by gradient descent that has a fast inference form: its tiny model.
FAST = sorted(k.name for k in KINDS.values()
              if k.model.inference_form is not LanguageModel.inference_form
              and not k.trains_by_counting)


@pytest.fixture(scope="module")
def data():
    words = load_dataset("ssa:1880").words  # 2,000 names, built in: no file needed
    return Vocab.from_words(words), split_words(words, 42)


def test_the_mlp_is_among_the_kinds_checked():
    assert "mlp" in FAST


def layer_nll(model, words) -> float:
    """Mean NLL per character through `layer_logits`, written out here, in float64 (for a
    kind that trains on whole sequences: its own `nll`, which cannot use a fast form while
    the model is not frozen)."""
    X, Y = model.examples(words)
    assert not model._frozen
    with torch.no_grad():
        if Y.dim() > 1:
            return (model.nll(X, Y) / (Y != -1).sum()).item()
        return F.cross_entropy(model.layer_logits(X).double(), Y).item()


def tiny_run(kind: str, **changes):
    """The kind's tiny training, 4 validation passes long, with changes."""
    tiny = KINDS[kind].tiny_training
    return dataclasses.replace(tiny, **{"steps": 4 * tiny.eval_interval, **changes})


@pytest.mark.parametrize("kind", FAST)
def test_each_recorded_val_is_that_of_the_weights_of_its_step(kind, data):
    vocab, split = data
    seen: list[tuple[int, float, dict]] = []

    def on_eval(step, model, val):
        was = model.training
        model.eval()
        seen.append((step, layer_nll(model, split.val), {
            k: v.detach().clone() for k, v in model.state_dict().items()}))
        model.train(was)

    opt = tiny_run(kind)
    model, history = fit(KINDS[kind], vocab, split, KINDS[kind].tiny, opt, on_eval=on_eval)
    assert history.step == [opt.eval_interval * i for i in (1, 2, 3, 4)] \
        == [s for s, _, _ in seen]
    for recorded, (_, independent, _) in zip(history.val, seen, strict=True):
        assert recorded == pytest.approx(independent, abs=1e-5)
    assert len(set(history.val)) == len(history.val), f"val did not move: {history.val}"
    assert history.val[-1] < history.val[0]

    best = min(range(len(seen)), key=lambda i: seen[i][1])
    returned = model.state_dict()
    for name, tensor in seen[best][2].items():
        assert torch.equal(returned[name], tensor), name
    assert layer_nll(model, split.val) == pytest.approx(min(history.val), abs=1e-5)


@pytest.mark.parametrize("kind", FAST)
def test_the_trainer_uses_fused_adamw(kind, monkeypatch, data):
    """The optimiser the regression came from is the one the tests above run."""
    vocab, split = data
    made = []
    real = torch.optim.AdamW

    def spy(*args, **kwargs):
        made.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.optim, "AdamW", spy)
    fit(KINDS[kind], vocab, split, KINDS[kind].tiny,
        tiny_run(kind, steps=2, warmup=0, eval_interval=1))
    assert made and made[0].get("fused") is True


class SequenceBigram(LanguageModel):
    """A bigram trained on whole names, as a Transformer is (issue 12's shape): X (N, T) and
    Y (N, T) with -1 at padding; the trainer and evaluate take it as it is."""

    kind = "sequence-bigram"

    def __init__(self, vocab: Vocab) -> None:
        super().__init__(vocab, block_size=1)
        self.W = torch.nn.Parameter(torch.zeros(len(vocab), len(vocab)))

    def init_weights(self, generator: torch.Generator) -> None:
        with torch.no_grad():
            self.W.copy_(torch.randn(self.W.shape, generator=generator))

    def layer_logits(self, idx):  # sampling's contexts: (B, 1) -> (B, V)
        return self.W[idx[:, -1]]

    def examples(self, words):
        T = max(len(w) for w in words) + 1
        X = torch.zeros(len(words), T, dtype=torch.long)
        Y = torch.full((len(words), T), -1, dtype=torch.long)
        for i, w in enumerate(words):
            ids = [self.vocab.stoi[c] for c in w]
            X[i, 1 : len(w) + 1], Y[i, : len(w) + 1] = torch.tensor(ids), torch.tensor(ids + [0])
        return X, Y

    def forward(self, idx, targets=None):
        if targets is None or targets.dim() == 1:
            return super().forward(idx, targets)
        logits = self.W[idx]  # (B, T, V): every position
        return logits, F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-1)

    def nll(self, X, Y):
        return F.cross_entropy(self.W[X].flatten(0, 1).double(), Y.flatten(), ignore_index=-1,
                               reduction="sum")


def test_a_kind_that_trains_on_whole_sequences_trains_and_evaluates_per_character(data):
    vocab, split = data
    seq = SequenceBigram(vocab)
    opt = OptimConfig(steps=60, batch_size=32, lr=0.1, warmup=0, eval_interval=20)
    history = train(seq, split, opt)
    assert history.val[-1] < history.val[0]
    pairs = NeuralBigram(vocab)  # the same function, evaluated on (context, next) pairs
    pairs.load_state_dict({"W": seq.W.detach()})
    assert evaluate(seq, split.val) == pytest.approx(evaluate(pairs, split.val), rel=1e-9)
    assert min(history.val) == pytest.approx(evaluate(seq, split.val), abs=1e-5)  # best kept


# --- minibatches: uniform as ever, or in proportion to each example's weight ---

def test_weighted_minibatches_draw_rows_in_proportion_to_their_weights():
    weights = torch.tensor([1.0, 0.0, 2.0, 5.0, 0.0, 12.0])
    draw = minibatches(len(weights), 1000, torch.Generator().manual_seed(3), weights)
    counts = torch.bincount(torch.cat([draw() for _ in range(200)]), minlength=len(weights))
    n, p = 200_000, weights / weights.sum()
    assert counts.sum() == n and counts[1] == 0 and counts[4] == 0  # weight 0: never drawn
    # each count within 5 standard deviations of its expectation n p (binomial)
    sd = (n * p * (1 - p)).sqrt()
    assert ((counts - n * p).abs() <= 5 * sd + 1e-9).all(), (counts, n * p)
    # chi-square over the four drawn rows, 3 degrees of freedom: 25 is far past p = 0.0001
    seen = p > 0
    assert float(((counts[seen] - n * p[seen]) ** 2 / (n * p[seen])).sum()) < 25
    # seeded: the same draws again
    again = minibatches(len(weights), 1000, torch.Generator().manual_seed(3), weights)
    first = minibatches(len(weights), 1000, torch.Generator().manual_seed(3), weights)
    assert torch.equal(again(), first())


def test_unweighted_minibatches_are_the_trainers_randint_draws():
    gen, ref = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    draw = minibatches(700, 64, gen)
    for _ in range(3):
        assert torch.equal(draw(), torch.randint(0, 700, (64,), generator=ref))


@pytest.mark.parametrize(("weights", "batch", "message"), [
    (torch.ones(3), 8, "4 example weights expected"),
    (torch.tensor([1.0, -1.0, 0.0, 1.0]), 8, ">= 0"),
    (torch.tensor([1.0, float("nan"), 0.0, 1.0]), 8, "finite"),
    (torch.zeros(4), 8, "not all zero"),
    (torch.ones(4), 0, "batch_size must be > 0"),
])
def test_bad_example_weights_are_refused_naming_the_problem(weights, batch, message):
    with pytest.raises(ValueError, match=message):
        minibatches(4, batch, torch.Generator(), weights)


# --- weight averaging: what is validated and kept is the EMA of the steps' weights ---

def test_ema_keeps_the_moving_average_of_every_steps_weights(data):
    """Reference: the raw run's weights after every step (an evaluation at every step draws
    nothing from any generator), averaged here by the EMA's recurrence in float64."""
    vocab, split = data
    steps, decay = 12, 0.8
    raw_cfg = OptimConfig(steps=steps, batch_size=32, lr=0.05, warmup=0, eval_interval=1)
    weights: list[dict[str, torch.Tensor]] = []

    def keep(step, model, val):
        weights.append({k: v.detach().double().clone() for k, v in model.state_dict().items()})

    torch.manual_seed(0)
    train(NeuralBigram(vocab), split, raw_cfg, on_eval=keep)
    ema = dict(weights[0])  # the first update copies the weights
    for w in weights[1:]:
        ema = {k: decay * ema[k] + (1 - decay) * w[k] for k in ema}

    averaged: list[tuple[LanguageModel, float]] = []
    torch.manual_seed(0)
    model = NeuralBigram(vocab)
    history = train(model, split, dataclasses.replace(raw_cfg, eval_interval=steps, ema=decay),
                    on_eval=lambda step, m, val: averaged.append((m, val)))
    kept, val = averaged[-1]
    assert kept is not model  # on_eval sees the average, not the raw weights
    assert torch.allclose(kept.W.double(), ema["W"], atol=1e-6)
    assert not torch.allclose(ema["W"], weights[-1]["W"], atol=1e-3)  # the average differs
    assert torch.allclose(model.W.double(), ema["W"], atol=1e-6)  # and it is what is kept
    assert history.val[-1] == pytest.approx(evaluate(model, split.val), abs=1e-5)


def test_ema_off_and_out_of_range():
    assert OptimConfig().ema == 0
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError, match="ema"):
            OptimConfig(ema=bad)
