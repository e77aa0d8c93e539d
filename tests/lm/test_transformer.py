import pytest
import torch
import torch.nn.functional as F

from app.lm.base import Decoder, build_examples
from app.lm.sampling import sample_scored
from app.lm.scoring import log_probs
from app.lm.transformer import KVDecoder, Rowwise, Transformer, TransformerConfig
from app.lm.vocab import Vocab
from tests.conftest import TINY_NAMES

VOCAB = Vocab.from_words(TINY_NAMES)
CFG = TransformerConfig(block_size=6, n_layer=2, n_head=2, n_embd=16, dropout=0.1)
WORDS = ["emma", "a", "bartholomew", "zoe", "abcdef", "abcde", "abcdefg", *TINY_NAMES[:20]]


def random_transformer(cfg: TransformerConfig = CFG, seed: int = 0) -> Transformer:
    m = Transformer(VOCAB, cfg)
    m.init_weights(torch.Generator().manual_seed(seed))
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(seed + 1)) * 0.2)
    return m.eval()


def reference_logits(m: Transformer, context: str) -> torch.Tensor:
    """Oracle: the context read from its start, one sequence at a time, no batching or rolling:
    '.' + the letters when they fit the block, else the last block_size letters."""
    T = m.block_size
    seq = ("." + context) if len(context) < T else context[-T:]
    x = torch.tensor([[VOCAB.stoi[c] for c in seq]])
    with torch.no_grad():
        return m.sequence_logits(x)[0, -1]


def test_windows_read_each_name_from_its_start():
    m = random_transformer()
    X, _ = build_examples(WORDS, VOCAB, m.block_size)
    contexts = [w[:t] for w in WORDS for t in range(len(w) + 1)]
    expected = torch.stack([reference_logits(m, c) for c in contexts])
    with torch.no_grad():
        torch.testing.assert_close(m.layer_logits(X), expected, rtol=1e-5, atol=1e-5)
        # scoring's path: one pass over each whole word
        torch.testing.assert_close(m.word_logits(WORDS, X), expected, rtol=1e-5, atol=1e-5)


def test_attention_is_causal():
    m = random_transformer()
    x = torch.tensor([[0, 5, 13, 13, 1, 0]])
    y = x.clone()
    y[0, 4:] = torch.tensor([7, 9])
    with torch.no_grad():
        a, b = m.sequence_logits(x), m.sequence_logits(y)
    torch.testing.assert_close(a[:, :4], b[:, :4])
    assert not torch.allclose(a[:, 4], b[:, 4])


def test_training_rows_give_the_nll_of_the_windows():
    m = random_transformer()
    X, Y = build_examples(WORDS, VOCAB, m.block_size)
    x, y = m.examples(WORDS)
    with torch.no_grad():
        windows = F.cross_entropy(m.layer_logits(X), Y, reduction="sum")
        whole = F.cross_entropy(m.sequence_logits(x).flatten(0, 1), y.flatten(),
                                ignore_index=-1, reduction="sum")
    assert int((y != -1).sum()) == len(Y)
    assert whole.item() == pytest.approx(windows.item(), rel=1e-5)


@pytest.mark.parametrize("prefix", ["", "ab", "abcde", "abcdefgh"])
def test_kv_decoding_samples_what_the_windows_sample(prefix):
    m = random_transformer()
    assert isinstance(m.decoder(torch.zeros(2, 6, dtype=torch.long)), KVDecoder)
    got, lps = sample_scored(m, 40, torch.Generator().manual_seed(3), prefix=prefix, max_len=12)
    m.decoder = lambda ctx: Decoder(m, ctx)  # the plain windows, every step
    again, lps2 = sample_scored(m, 40, torch.Generator().manual_seed(3), prefix=prefix,
                                max_len=12)
    assert got == again
    assert lps == pytest.approx(lps2, abs=1e-5)
    assert lps == pytest.approx(log_probs(m, got), abs=1e-5)
    assert all(n.startswith(prefix) for n in got)


def test_the_frozen_form_matches_the_layers():
    """Rowwise (serving): windows, whole words, and the oracle, to float32 rounding."""
    m = random_transformer()
    X, _ = build_examples(WORDS, VOCAB, m.block_size)
    with torch.no_grad():
        layers, words = m.layer_logits(X), m.word_logits(WORDS, X)
    m.freeze()
    assert isinstance(m._fast, Rowwise)
    with torch.no_grad():
        torch.testing.assert_close(m.logits(X), layers, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(m.word_logits(WORDS, X), words, rtol=1e-5, atol=1e-5)
        for rows in (X[:1], X[-3:]):
            torch.testing.assert_close(m.logits(rows), m.layer_logits(rows), rtol=1e-5,
                                       atol=1e-5)


@pytest.mark.parametrize("cfg", [CFG, TransformerConfig(),  # the shipped shape
                                 TransformerConfig(block_size=7, n_layer=1, n_head=3,
                                                   n_embd=33, dropout=0.0)])
def test_a_words_logits_do_not_depend_on_the_other_words(cfg):
    """What serving scoring requests together relies on (app/batching.py): to the last bit,
    whatever the words beside it and however many, words longer than the block included (their
    late steps are read from windows)."""
    m = random_transformer(cfg).freeze()
    g = torch.Generator().manual_seed(2)
    pool = ["".join(VOCAB.chars[i] for i in torch.randint(0, len(VOCAB.chars), (k,),
                                                          generator=g).tolist())
            for k in torch.randint(1, 20, (300,), generator=g).tolist()]
    pool[0] = (VOCAB.chars * 4)[: cfg.block_size + 1]  # alone: one late step, one window
    X, _ = build_examples(pool, VOCAB, m.block_size)
    with torch.no_grad():
        everything = m.word_logits(pool, X)
        starts = torch.cumsum(torch.tensor([0] + [len(w) + 1 for w in pool]), 0)
        subsets = [[0]] + [torch.randperm(len(pool), generator=g)[:n].tolist()
                           for n in [1, 2, 3, 7, 16, 17, 100]]
        for some in subsets:
            words = [pool[i] for i in some]
            Xs, _ = build_examples(words, VOCAB, m.block_size)
            want = torch.cat([everything[starts[i] : starts[i + 1]] for i in some])
            got = m.word_logits(words, Xs)
            # The contract, not this CPU's kernels: a model that says its rows are independent
            # (and so is batched) gives the same bits in any batch; one that does not is served
            # one request at a time, and its logits agree to rounding.
            if m.rows_independent:
                assert torch.equal(got, want), some
            else:
                torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_rows_independent_is_false_when_the_batch_changes_the_bits(monkeypatch):
    run = Rowwise.sequence_logits
    monkeypatch.setattr(Rowwise, "sequence_logits",
                        lambda self, x: run(self, x) * (1 + 1e-6 * (len(x) % 3)))
    assert not random_transformer().freeze().rows_independent


@pytest.mark.parametrize("bad", [{"block_size": 1}, {"n_head": 3}, {"n_layer": 0},
                                 {"n_layer": 10**3}, {"n_embd": 10**6}, {"dropout": -0.1}])
def test_config_bounds(bad):
    with pytest.raises((TypeError, ValueError)):
        TransformerConfig(**bad)
