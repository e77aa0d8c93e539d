"""The gradient trainer, checked against an independent evaluation at every validation point.

Issue 10: every MLP trained on main stopped learning after its first validation pass, because
evaluation reused a fast inference form built from the weights of step 1000 (fused AdamW moves
weights without bumping their version counters). These tests run the real trainer with the
production optimiser and re-evaluate the weights of each step through the layers as written.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from app.data import load_dataset, split_words
from app.lm import MODEL_TYPES, MLPConfig, Vocab
from app.lm.base import build_examples
from app.lm.train import OptimConfig, train_mlp

# Every kind with a fast inference form, and how to train a small one with the real trainer.
SMALL = {
    "mlp": lambda vocab, split, opt, on_eval: train_mlp(
        vocab, split, MLPConfig(block_size=3, n_embd=8, n_hidden=64, n_layers=1, dropout=0.1),
        opt, on_eval=on_eval),
}


@pytest.fixture(scope="module")
def data():
    words = load_dataset("ssa:1880").words  # 2,000 names, built in: no file needed
    return Vocab.from_words(words), split_words(words, 42)


def test_every_kind_with_a_fast_form_is_checked():
    assert {k for k, cls in MODEL_TYPES.items() if cls.has_inference_form()} - {"bigram"} \
        == set(SMALL)


def layer_nll(model, words) -> float:
    """Mean NLL per character through `layer_logits`, written out here, in float64."""
    X, Y = build_examples(words, model.vocab, model.block_size)
    with torch.no_grad():
        return F.cross_entropy(model.layer_logits(X).double(), Y).item()


@pytest.mark.parametrize("kind", sorted(SMALL))
def test_each_recorded_val_is_that_of_the_weights_of_its_step(kind, data):
    vocab, split = data
    seen: list[tuple[int, float, dict]] = []

    def on_eval(step, model, val):
        was = model.training
        model.eval()
        seen.append((step, layer_nll(model, split.val), {
            k: v.detach().clone() for k, v in model.state_dict().items()}))
        model.train(was)

    opt = OptimConfig(steps=400, batch_size=64, lr=1e-2, warmup=20, eval_interval=100)
    model, history = SMALL[kind](vocab, split, opt, on_eval)
    assert history.step == [100, 200, 300, 400] == [s for s, _, _ in seen]
    for recorded, (_, independent, _) in zip(history.val, seen, strict=True):
        assert recorded == pytest.approx(independent, abs=1e-5)
    assert len(set(history.val)) == len(history.val), f"val did not move: {history.val}"
    assert history.val[-1] < history.val[0]

    best = min(range(len(seen)), key=lambda i: seen[i][1])
    returned = model.state_dict()
    for name, tensor in seen[best][2].items():
        assert torch.equal(returned[name], tensor), name
    assert layer_nll(model, split.val) == pytest.approx(min(history.val), abs=1e-5)


def test_the_trainer_uses_fused_adamw(monkeypatch, data):
    """The optimiser the regression came from is the one the tests above run."""
    vocab, split = data
    made = []
    real = torch.optim.AdamW

    def spy(*args, **kwargs):
        made.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.optim, "AdamW", spy)
    SMALL["mlp"](vocab, split, OptimConfig(steps=2, batch_size=8, warmup=0, eval_interval=1),
                 None)
    assert made and made[0].get("fused") is True
