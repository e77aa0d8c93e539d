import pytest
import torch
import torch.nn.functional as F

from app.lm.base import Decoder, build_examples
from app.lm.sampling import Draw, drive, group_sampler
from app.lm.scoring import log_probs
from app.lm.transformer import KVDecoder, Rowwise, Transformer, TransformerConfig
from app.lm.vocab import Vocab
from tests.conftest import TINY_NAMES
from tests.lm.sampling_helpers import draw_scored

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


def spy_steps(monkeypatch) -> list[int]:
    """The rows of every `Rowwise.step` from now on: the KV-cached decoder's work."""
    rows: list[int] = []
    step = Rowwise.step

    def spy(self, tokens, cache, pos):
        rows.append(len(tokens))
        return step(self, tokens, cache, pos)

    monkeypatch.setattr(Rowwise, "step", spy)
    return rows


@pytest.mark.parametrize("prefix", ["", "ab", "abcde", "abcdefgh"])
def test_kv_decoding_samples_what_the_windows_sample(prefix, monkeypatch):
    m = random_transformer().freeze()
    with torch.no_grad():
        assert isinstance(m.decoder(torch.zeros(2, 6, dtype=torch.long)), KVDecoder)
    steps = spy_steps(monkeypatch)
    got, lps = draw_scored(m, 40, torch.Generator().manual_seed(3), prefix=prefix, max_len=12)
    # The fast path was taken (unless the prefix fills the block: windows from the start).
    assert (len(steps) > 0) == (len(prefix) < m.block_size - 1)
    m.decoder = lambda ctx: Decoder(m, ctx)  # the plain windows, every step
    again, lps2 = draw_scored(m, 40, torch.Generator().manual_seed(3), prefix=prefix,
                                max_len=12)
    assert got == again
    assert lps == pytest.approx(lps2, abs=1e-5)
    assert lps == pytest.approx(log_probs(m, got), abs=1e-5)
    assert all(n.startswith(prefix) for n in got)


def test_an_unfrozen_model_samples_through_the_windows():
    m = random_transformer()
    with torch.no_grad():
        assert type(m.decoder(torch.zeros(2, 6, dtype=torch.long))) is Decoder


@pytest.mark.parametrize("cfg", [CFG, TransformerConfig(dropout=0.0),  # and blocks that end
                                 *(TransformerConfig(block_size=b, n_layer=1, n_head=1, n_embd=8,
                                                     dropout=0.0) for b in (2, 3))])  # in the table
@pytest.mark.parametrize("start", ["", "a", "ab"])
def test_the_decoder_gives_the_full_passs_logits(cfg, start):
    """Oracle: at every step, the KV-cached decoder's logits are those of the layers as
    written on the names' windows (`layer_logits`, the whole sequence in one pass), while the
    names branch, share histories, end, and outgrow the block (the windows take over)."""
    m = random_transformer(cfg).freeze()
    g = torch.Generator().manual_seed(5)
    ctx = torch.tensor([([0] * m.block_size + VOCAB.encode(start))[-m.block_size:]] * 50)
    with torch.no_grad():
        dec = m.decoder(ctx)
        assert isinstance(dec, KVDecoder)
        for _ in range(m.block_size + 3):
            got = dec.logits()
            torch.testing.assert_close(got, m.layer_logits(dec.ctx), rtol=1e-5, atol=1e-5)
            ix = torch.multinomial(torch.softmax(got, dim=1), 1, generator=g).squeeze(1)
            keep = torch.rand(len(ix), generator=g) > 0.1  # some names end
            dec.advance(keep, torch.where(keep, ix.clamp_min(1), 0))
        assert dec.cache is None and len(dec.ctx) > 0  # past the block: the windows


@pytest.mark.parametrize("cfg", [CFG, TransformerConfig(dropout=0.0)])  # tests', shipped shape
def test_requests_grouped_in_one_decoder_get_the_bits_they_get_alone(cfg, monkeypatch):
    """What serving sampling requests together relies on (app/serving/batching.py): a group of draws
    in one KVDecoder gives each draw its names and log-probabilities to the bit, when the model
    says its decoder's rows are independent of the batch (else it is never grouped)."""
    m = random_transformer(cfg).freeze()
    sizes = [(1, 3), (20, 4), (7, 5), (300, 6)]
    alone = [draw_scored(m, n, torch.Generator().manual_seed(s)) for n, s in sizes]
    decoders = []
    monkeypatch.setattr(m, "decoder", lambda ctx: decoders.append(KVDecoder(m, ctx))
                        or decoders[-1])
    (together,) = drive(m, [group_sampler(
        m, [Draw(n, torch.Generator().manual_seed(s)) for n, s in sizes])])
    assert len(decoders) == 1  # one decoder for the group
    got = [(d.names, d.log_probs) for d in together]
    if m.groups_sampling:
        assert got == alone
    else:  # never grouped when served; its names still scored as the layers score them
        for names, lps in got:
            assert lps == pytest.approx(log_probs(m, names), abs=1e-5)


def test_groups_sampling_is_false_when_the_batch_changes_the_decoders_bits(monkeypatch):
    step = Rowwise.step
    monkeypatch.setattr(Rowwise, "step", lambda self, tokens, cache, pos:
                        step(self, tokens, cache, pos) * (1 + 1e-6 * (len(tokens) > 16)))
    m = random_transformer().freeze()
    assert not m.rows_independent and not m.groups_sampling


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
    """What serving scoring requests together relies on (app/serving/batching.py): to the last bit,
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
