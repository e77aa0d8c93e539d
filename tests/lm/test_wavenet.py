import pytest
import torch

from app.lm.base import build_examples
from app.lm.vocab import Vocab
from app.lm.wavenet import Tabled, WaveNet, WaveNetConfig
from tests.conftest import TINY_NAMES

VOCAB = Vocab.from_words(TINY_NAMES)
CFG = WaveNetConfig(block_size=8, n_embd=6, n_hidden=16, dropout=0.1)


def random_wavenet(cfg: WaveNetConfig = CFG, seed: int = 0) -> WaveNet:
    m = WaveNet(VOCAB, cfg)
    m.init_weights(torch.Generator().manual_seed(seed))
    with torch.no_grad():  # LayerNorm gains and shifts away from 1 and 0, too
        for p in m.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(seed + 1)) * 0.3)
    return m.eval()


def contexts(cfg: WaveNetConfig) -> torch.Tensor:
    real, _ = build_examples(TINY_NAMES, VOCAB, cfg.block_size)
    noise = torch.randint(0, len(VOCAB), (300, cfg.block_size),
                          generator=torch.Generator().manual_seed(1))
    return torch.cat([real, noise])


def test_the_tree_fuses_neighbours_pairwise():
    """The lecture's shapes: 8 embeddings -> 4 -> 2 -> 1, FlattenConsecutive(2) at each level."""
    m = random_wavenet()
    x = m.C(contexts(CFG)[:5])
    shapes = [tuple(x.shape)]
    for level in m.levels:
        x = level(x)
        shapes.append(tuple(x.shape))
    assert shapes == [(5, 8, 6), (5, 4, 16), (5, 2, 16), (5, 1, 16)]
    assert m.levels[0].linear.weight.shape == (16, 12)
    assert m.levels[1].linear.weight.shape == (16, 32)


def test_the_hierarchy_is_what_the_lecture_computes():
    """Oracle: the same forward pass written out with plain tensor ops."""
    m, X = random_wavenet(), contexts(CFG)[:40]
    x = m.C.weight[X]  # (B, 8, E)
    for level in m.levels:
        B, T, C = x.shape
        x = x.view(B, T // 2, 2 * C) @ level.linear.weight.T
        x = torch.nn.functional.layer_norm(x, x.shape[-1:], level.norm.weight, level.norm.bias)
        x = torch.tanh(x)
    expected = x[:, 0] @ m.head.weight.T + m.head.bias
    with torch.no_grad():
        torch.testing.assert_close(m.layer_logits(X), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cfg", [CFG, WaveNetConfig(block_size=2, n_embd=3, n_hidden=8),
                                 WaveNetConfig(block_size=16, n_embd=4, n_hidden=8)])
def test_the_tabled_form_matches_the_layers(cfg):
    m, X = random_wavenet(cfg).freeze(), contexts(cfg)
    assert isinstance(m._fast, Tabled)
    with torch.no_grad():
        torch.testing.assert_close(m.logits(X), m.layer_logits(X), rtol=1e-5, atol=1e-5)
        for rows in (X[:1], X[-3:], X[:0]):
            torch.testing.assert_close(m.logits(rows), m.layer_logits(rows), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("bad", [{"block_size": 6}, {"block_size": 1}, {"block_size": 128},
                                 {"n_hidden": 0}, {"n_embd": 10**6}, {"dropout": 1.0}])
def test_config_bounds(bad):
    with pytest.raises((TypeError, ValueError)):
        WaveNetConfig(**bad)


@pytest.mark.parametrize("cfg", [CFG, WaveNetConfig(block_size=8, n_embd=24, n_hidden=128),
                                 WaveNetConfig(block_size=16, n_embd=10, n_hidden=200),
                                 WaveNetConfig(block_size=4, n_embd=7, n_hidden=100)])
def test_a_rows_logits_do_not_depend_on_the_rest_of_the_batch(cfg):
    """What batching requests together relies on (app/serving/batching.py): to the last bit."""
    m = random_wavenet(cfg).freeze()
    g = torch.Generator().manual_seed(1)
    idx = torch.randint(1, len(VOCAB), (1500, cfg.block_size), generator=g)
    full = m._fast.network(idx)
    for n in [1, 2, 3, 7, 15, 16, 17, 31, 100, 257, 999]:
        rows = torch.randperm(len(idx), generator=g)[:n]
        got = m._fast.network(idx[rows])
        if m.rows_independent:  # batched: the bits; else served alone: equal to rounding
            assert torch.equal(got, full[rows]), n
        else:
            torch.testing.assert_close(got, full[rows], rtol=1e-5, atol=1e-5)


def test_rows_independent_is_false_when_the_batch_changes_the_bits(monkeypatch):
    network = Tabled.network
    monkeypatch.setattr(Tabled, "network",
                        lambda self, idx: network(self, idx) * (1 + 1e-6 * (len(idx) % 3)))
    assert not random_wavenet().freeze().rows_independent
