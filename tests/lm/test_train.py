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
from app.lm import KINDS, Vocab
from app.lm.train import fit

# Every kind trained by gradient descent that has a fast inference form: its tiny model.
FAST = sorted(k.name for k in KINDS.values() if k.has_fast_inference and not k.trains_by_counting)


@pytest.fixture(scope="module")
def data():
    words = load_dataset("ssa:1880").words  # 2,000 names, built in: no file needed
    return Vocab.from_words(words), split_words(words, 42)


def test_the_mlp_is_among_the_kinds_checked():
    assert "mlp" in FAST


def layer_nll(model, words) -> float:
    """Mean NLL per character through `layer_logits`, written out here, in float64."""
    X, Y = model.examples(words)
    with torch.no_grad():
        logits = model.layer_logits(X).double()
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), Y.reshape(-1),
                               ignore_index=-1).item()


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
