import pytest
import torch

from app.data import split_words
from app.lm import KINDS, MLP, MLPConfig, Vocab
from app.lm.base import build_examples
from app.lm.config import OptimConfig
from app.lm.mlp import Folded
from app.lm.train import evaluate, fit
from tests.conftest import TINY_NAMES

CFG = MLPConfig(block_size=3, n_embd=4, n_hidden=32, n_layers=2, dropout=0.1)
VOCAB = Vocab.from_words(TINY_NAMES)


def test_shapes_follow_the_interface():
    m = MLP(VOCAB, CFG)
    m.init_weights(torch.Generator().manual_seed(0))
    X, Y = build_examples(["emma", "bob"], VOCAB, CFG.block_size)
    assert X.shape == (9, 3) and Y.tolist()[:5] == [VOCAB.stoi[c] for c in "emma."]
    logits, loss = m(X, Y)
    assert logits.shape == (9, 27) and loss.ndim == 0
    assert m(X)[1] is None
    assert m.embedding_table().shape == (27, 4)
    # a fresh model predicts nearly uniformly: loss ~ log(27)
    assert abs(loss.item() - torch.log(torch.tensor(27.0)).item()) < 0.1


def test_loss_falls_and_best_val_weights_are_kept():
    split = split_words(TINY_NAMES, seed=None)
    before = MLP(VOCAB, CFG)
    before.init_weights(torch.Generator().manual_seed(1))
    start = evaluate(before, TINY_NAMES)
    model, history = fit(KINDS["mlp"], VOCAB, split, CFG,
                         OptimConfig(steps=300, batch_size=64, lr=1e-2, warmup=10,
                                     eval_interval=100))
    assert history.step == [100, 200, 300]
    assert evaluate(model, TINY_NAMES) < start - 1.0
    assert history.train[-1] < history.train[0]
    assert not model.training


def test_training_is_deterministic_for_a_seed():
    split = split_words(TINY_NAMES)
    opt = OptimConfig(steps=50, batch_size=16, warmup=5, eval_interval=25, seed=3)
    a, ha = fit(KINDS["mlp"], VOCAB, split, CFG, opt)
    b, hb = fit(KINDS["mlp"], VOCAB, split, CFG, opt)
    assert ha == hb
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(va, vb), k


def test_lr_schedule_warms_up_then_decays():
    opt = OptimConfig(steps=1000, lr=1e-2, lr_min=1e-4, warmup=100)
    assert opt.lr_at(0) == 1e-4 and opt.lr_at(99) == 1e-2
    assert opt.lr_at(999) < 2e-4 and opt.lr_at(500) < opt.lr_at(200)


def random_mlp(cfg: MLPConfig, seed: int = 0) -> MLP:
    """An MLP with every weight random, LayerNorm's gain and shift included."""
    return randomized(MLP(VOCAB, cfg), seed)


def randomized(m, seed: int = 0):
    """m with every parameter random (N(0, 0.25)), in eval mode."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return m.eval()


def all_contexts(cfg: MLPConfig, n: int = 500) -> torch.Tensor:
    """Random contexts, and the real ones of the tiny names (many of them short, '.'-padded)."""
    real, _ = build_examples(TINY_NAMES, VOCAB, cfg.block_size)
    noise = torch.randint(0, len(VOCAB), (n, cfg.block_size),
                          generator=torch.Generator().manual_seed(1))
    return torch.cat([real, noise])


def test_inference_matches_the_layers_as_written():
    for cfg in (CFG, MLPConfig(block_size=1, n_embd=2, n_hidden=8, n_layers=1, dropout=0),
                MLPConfig(block_size=5, n_embd=3, n_hidden=16, n_layers=3, dropout=0.5)):
        m, X = random_mlp(cfg).freeze(), all_contexts(cfg)
        assert isinstance(m._fast, Folded)
        with torch.no_grad():
            folded, written = m.logits(X), m.layer_logits(X)
            for rows in (X[:1], X[-3:], X[:0]):  # short only, long only, none
                torch.testing.assert_close(m.logits(rows), m.layer_logits(rows),
                                           rtol=1e-5, atol=1e-5)
        K = cfg.block_size - m._fast.skip  # the short contexts, precomputed: 27**K of them
        assert len(m._fast.short) == 27**K and K == min(cfg.block_size, 3)
        torch.testing.assert_close(folded, written, rtol=1e-5, atol=1e-5)


def test_the_fast_form_is_used_only_while_frozen():
    m, X = random_mlp(CFG), all_contexts(CFG)
    assert not m._frozen
    with torch.no_grad():
        unfrozen = m.logits(X)  # evaluation of a model being trained: the layers
    assert not m._frozen and m._fast is None
    m.freeze()
    assert m._frozen and not any(p.requires_grad for p in m.parameters())
    with torch.no_grad():
        torch.testing.assert_close(m.logits(X), unfrozen, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("fused", [True, False])
def test_no_optimiser_can_step_a_frozen_model_and_training_drops_the_form(fused):
    """The regression of issue 10: fused AdamW updates weights without bumping their version
    counters, and a cache that trusted the counters kept serving the first weights."""
    m, X = random_mlp(CFG), all_contexts(CFG)
    m.freeze()
    opt = torch.optim.AdamW(m.parameters(), lr=0.1, fused=fused)
    with pytest.raises(RuntimeError):  # no gradient can reach a frozen weight
        m(X, torch.zeros(len(X), dtype=torch.long))[1].backward()
    m.train()  # training again: the form goes, gradients come back
    assert m._fast is None and all(p.requires_grad for p in m.parameters())
    with torch.no_grad():
        before = m.logits(X)
    _, loss = m(X, torch.zeros(len(X), dtype=torch.long))
    loss.backward()
    opt.step()
    m.eval()
    with torch.no_grad():
        after = m.logits(X)
        torch.testing.assert_close(after, m.layer_logits(X), rtol=1e-5, atol=1e-5)
        assert not torch.allclose(after, before)


def test_load_state_dict_and_to_drop_the_form():
    m, X = random_mlp(CFG).freeze(), all_contexts(CFG)
    other = random_mlp(CFG, seed=7)
    m.load_state_dict(other.state_dict())
    assert m._fast is None
    with torch.no_grad():
        torch.testing.assert_close(m.logits(X), other.layer_logits(X), rtol=1e-5, atol=1e-5)
    m.freeze().to(torch.float64)
    assert m._fast is None


def test_training_and_gradients_use_the_layers_and_the_state_dict_stays_plain():
    m, X = random_mlp(CFG).freeze(), all_contexts(CFG, n=8)
    assert set(m.state_dict()) == set(MLP(VOCAB, CFG).state_dict())
    m.train()
    logits, _ = m(X)  # gradients on: the layers as written
    assert logits.requires_grad
    logits.sum().backward()
    assert m.C.weight.grad is not None and m.hidden[0].weight.grad is not None


@pytest.mark.parametrize("cfg", [MLPConfig(5, 10, 200, 3, 0.0), MLPConfig(2, 2, 16, 1, 0.0),
                                 MLPConfig(8, 24, 512, 2, 0.0), MLPConfig(4, 7, 100, 2, 0.0)])
def test_a_rows_logits_do_not_depend_on_the_rest_of_the_batch(cfg):
    """What batching requests together relies on (app/serving/batching.py): to the last bit."""
    vocab = Vocab("abcdefghijklmnopqrstuvwxyz")
    model = MLP(vocab, cfg)
    model.init_weights(torch.Generator().manual_seed(0))
    fast = model.freeze()._fast
    g = torch.Generator().manual_seed(1)
    idx = torch.randint(1, len(vocab), (1500, cfg.block_size), generator=g)
    full = fast.network(idx)
    for n in [1, 2, 3, 7, 15, 16, 17, 31, 100, 257, 999]:
        rows = torch.randperm(len(idx), generator=g)[:n]
        got = fast.network(idx[rows])
        if model.rows_independent:  # batched: the bits; else served alone: equal to rounding
            assert torch.equal(got, full[rows]), n
        else:
            torch.testing.assert_close(got, full[rows], rtol=1e-5, atol=1e-5)


def test_rows_independent_is_false_when_the_batch_changes_the_bits(monkeypatch):
    model = MLP(Vocab("abc"), MLPConfig(4, 3, 8, 1, 0.0))
    network = Folded.network
    monkeypatch.setattr(Folded, "network",
                        lambda self, idx: network(self, idx) * (1 + 1e-6 * (len(idx) % 3)))
    assert not model.freeze().rows_independent
