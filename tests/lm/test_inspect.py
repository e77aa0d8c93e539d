"""app/lm/inspect.py against independent references: the next-letter distribution against a
forward pass built here and the score's steps, its knobs' cut against the sampler's own draws;
the attention weights against a plain-tensor recomputation of the blocks; the hidden layers'
statistics against activations and statistics computed here by hand."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from app.lm import KINDS, Vocab, constraints
from app.lm.inspect import (
    HIST_BINS,
    HIST_TOP,
    SATURATED,
    attention,
    greedy,
    layer_health,
    next_letters,
    sample_words,
)
from app.lm.sampling import Knobs, exact_kind, filtered
from app.lm.scoring import score_names
from app.lm.vocab import MAX_NAME_LEN
from app.store.registry import Registry
from tests.conftest import TINY_NAMES
from tests.lm.sampling_helpers import draw_names

MODELS = list(KINDS)  # conftest: a tiny model of every kind, named after it
PREFIXES = ["", "e", "em", "xav", "isabell", "abcdefghijklmnop"]  # the last: past every block


@pytest.fixture(scope="module")
def registry(models_dir) -> Registry:
    return Registry.load_dir(models_dir)


def window_log_probs(model, prefix: str) -> torch.Tensor:
    """log_softmax of one forward pass on the prefix's window, the window built here."""
    stoi = model.vocab.stoi
    ctx = ([0] * model.block_size + [stoi[c] for c in prefix])[-model.block_size:]
    with torch.no_grad():
        return torch.log_softmax(model(torch.tensor([ctx]))[0].double(), dim=1)[0]


@pytest.mark.parametrize("kind", MODELS)
def test_the_distribution_is_the_forward_pass_and_sums_to_one(registry, kind):
    model = registry.get(kind).model
    for prefix in PREFIXES:
        nl = next_letters(model, prefix)
        assert len(nl.log_probs) == len(model.vocab)
        assert np.allclose(nl.log_probs, window_log_probs(model, prefix).numpy(), atol=1e-6)
        assert math.isclose(sum(math.exp(v) for v in nl.log_probs), 1.0, abs_tol=1e-9)
        assert math.isclose(sum(nl.sampling), 1.0, abs_tol=1e-5)


@pytest.mark.parametrize("kind", MODELS)
def test_the_distribution_gives_the_score_pages_steps(registry, kind):
    """After each prefix of a name, the probability of its next letter (or of the end) is the
    number of that step of the name's score, to 1e-6."""
    model = registry.get(kind).model
    stoi = model.vocab.stoi
    for name in ["emma", "xavier", "quinn", "abcdefghijklmnopqrs"]:
        (s,) = score_names(model, [name])
        for k, step in enumerate(s.steps):
            nl = next_letters(model, name[:k])
            assert abs(nl.log_probs[stoi[step["char"]]] - step["log_prob"]) < 1e-6, (name, k)


# top-p and min-p off the simple ratios the bigram's counts make (a tie at the bound is float
# rounding's to decide)
KNOBS = [Knobs(1.0), Knobs(0.7, 3), Knobs(1.6, 5), Knobs(1.0, 1), Knobs(1.0, None, 0.55),
         Knobs(0.8, None, 0.93, 0.11), Knobs(1.0, None, None, 0.21), Knobs(1.3, 6, 0.71, 0.053)]


def kept_by_hand(lp: torch.Tensor, knobs: Knobs, first: bool) -> torch.Tensor:
    """The knobs' cut written out on the model's log-probabilities, one rule at a time: the
    temperature, then the k most likely (ties in), then the most likely whose mass (of what is
    left) before them is below p, then those at least min_p times the most likely."""
    p = torch.exp(lp / knobs.temperature)
    if first:
        p[0] = 0.0  # a name has a letter
    keep = p > 0
    if knobs.top_k is not None:
        kth = p.sort(descending=True).values[knobs.top_k - 1]
        keep &= p >= kth * (1 - 1e-9)
    if knobs.top_p is not None:
        q = torch.where(keep, p, 0.0)
        q = q / q.sum()
        keep &= torch.tensor([float(q[q > q[j] * (1 + 1e-9)].sum()) < knobs.top_p
                              for j in range(len(q))])
    q = torch.where(keep, p, 0.0)
    keep &= q >= knobs.min_p * q.max() * (1 - 1e-9)
    return keep


@pytest.mark.parametrize("kind", ["bigram", "mlp", "transformer"])
@pytest.mark.parametrize("knobs", KNOBS, ids=str)
def test_the_knobs_cut_what_the_sampler_cuts_and_the_same_seed_draws_the_same(
        registry, kind, knobs):
    model = registry.get(kind).model
    stoi = model.vocab.stoi
    for prefix in ["", "a", "el"]:
        nl = next_letters(model, prefix, knobs)
        lp = window_log_probs(model, prefix)
        ctx = ([0] * model.block_size + [stoi[c] for c in prefix])[-model.block_size:]
        with torch.no_grad():
            own = filtered(model(torch.tensor([ctx]))[0].float(), knobs, first=not prefix)
        assert nl.kept == (own[0] > -math.inf).tolist()  # the sampler's own filter
        assert nl.kept == kept_by_hand(lp, knobs, not prefix).tolist()  # and by hand
        assert all(p == 0 for p, kept in zip(nl.sampling, nl.kept, strict=True) if not kept)
        assert math.isclose(sum(nl.sampling), 1.0, abs_tol=1e-9)
        if not exact_kind(model):
            # the step's distribution at this temperature, renormalised on the kept
            keep = torch.tensor(nl.kept)
            w = torch.where(keep, torch.exp(lp / knobs.temperature), 0.0)
            assert np.allclose(nl.sampling, (w / w.sum()).numpy(), atol=1e-6)
        # the bigram kinds: the sampler's exact conditional (by enumeration in the next test)
        for seed in range(20):
            name = draw_names(model, 1, torch.Generator().manual_seed(seed),
                              temperature=knobs.temperature, top_k=knobs.top_k,
                              top_p=knobs.top_p, min_p=knobs.min_p, prefix=prefix,
                              max_len=MAX_NAME_LEN)[0]
            u = torch.rand(1, generator=torch.Generator().manual_seed(seed)).item()
            cum = np.cumsum(nl.sampling)
            ix = int((cum <= u * cum[-1]).sum())
            drawn = name[len(prefix)] if len(name) > len(prefix) else "."
            assert drawn == model.vocab.itos[ix], (prefix, seed)


def enumerate_names(vocab, prefix: str, max_len: int):
    """Every name of len(prefix)..max_len letters that starts with the prefix (and at least one
    letter)."""
    for n in range(max(len(prefix), 1), max_len + 1):
        for rest in itertools.product(vocab.chars, repeat=n - len(prefix)):
            yield prefix + "".join(rest)


@pytest.mark.parametrize("kind", ["bigram", "neural-bigram"])
@pytest.mark.parametrize(("prefix", "fields", "knobs"), [
    ("el", {"max_len": 4}, Knobs()),
    ("el", {"suffix": "a", "max_len": 5}, Knobs(0.8, None, 0.9, 0.05)),
    ("", {"contains": "nn", "max_len": 3}, Knobs(1.2, 8)),
    ("ma", {"pattern": "ma[aeiou].*", "min_len": 4, "max_len": 5}, Knobs(1.0, None, None, 0.1)),
])
def test_the_bigram_kinds_bars_are_the_exact_conditional_by_enumeration(
        registry, kind, prefix, fields, knobs):
    """For a kind sampled exactly, the bars are P(next symbol | prefix, the name fits) at the
    knobs: every fitting name written out, its probability the product of its steps' (the
    knobs' table from a forward pass of each letter, built here), summed by next symbol."""
    model = registry.get(kind).model
    vocab = model.vocab
    c = constraints.build(vocab, prefix=prefix, **fields)
    nl = next_letters(model, prefix, knobs, c)
    V = len(vocab)
    with torch.no_grad():
        table = model(torch.arange(V)[:, None])[0].double()  # (V, V): after each symbol
    rows = [filtered(table[i:i + 1], knobs, first=(i == 0 and not prefix))[0]
            for i in range(V)]
    Q = torch.softmax(torch.stack(rows), dim=1)
    by_next = torch.zeros(V, dtype=torch.float64)
    for name in enumerate_names(vocab, prefix, c.max_len):
        if not c.fits(name):
            continue
        ids = [0, *vocab.encode(name), 0]
        p = math.prod(float(Q[a, b]) for a, b in itertools.pairwise(ids[len(prefix):]))
        by_next[ids[len(prefix) + 1]] += p
    assert nl.exact and by_next.sum() > 0
    assert np.allclose(nl.sampling, (by_next / by_next.sum()).numpy(), atol=1e-9)
    assert math.isclose(nl.mass, float(by_next.sum()), rel_tol=1e-9)
    assert nl.fits == [bool(f) for f in fits_by_enumeration(c, prefix)]


def fits_by_enumeration(c, prefix: str) -> list[bool]:
    """Whether some name going on with each symbol fits c (whatever the model)."""
    out = [False] * len(c.vocab)
    for name in enumerate_names(c.vocab, prefix, c.max_len):
        if c.fits(name):
            out[0 if name == prefix else c.vocab.stoi[name[len(prefix)]]] = True
    return out


@pytest.mark.parametrize("kind", ["mlp", "wavenet", "transformer"])
@pytest.mark.parametrize(("prefix", "fields"), [
    ("el", {"suffix": "a", "max_len": 3}),
    ("el", {"suffix": "na", "max_len": 5}),
    ("", {"pattern": "[aeiou]{2}.*", "max_len": 3}),
    ("jo", {"min_len": 4, "max_len": 5, "contains": "y"}),
])
def test_the_other_kinds_cut_what_cannot_fit_and_renormalise_the_rest(
        registry, kind, prefix, fields):
    """For a kind sampled by rejection, the symbols that cannot lead to a fitting name are cut
    (checked by writing the names out) and the others keep the step's distribution at the
    knobs, renormalised; the view says it is not exact."""
    model = registry.get(kind).model
    c = constraints.build(model.vocab, prefix=prefix, **fields)
    knobs = Knobs(0.9, None, 0.95)
    nl = next_letters(model, prefix, knobs, c)
    assert not nl.exact and nl.mass is None
    assert nl.fits == fits_by_enumeration(c, prefix)
    plain = next_letters(model, prefix, knobs)
    w = torch.tensor(plain.sampling) * torch.tensor(nl.fits)
    assert np.allclose(nl.sampling, (w / w.sum()).numpy(), atol=1e-9)
    assert c.fits(nl.greedy)  # the greedy name takes only letters that can still fit


@pytest.mark.parametrize("kind", MODELS)
def test_greedy_takes_a_most_likely_symbol_each_step(registry, kind):
    """Each step of the continuation is a most likely symbol of a forward pass built here; and,
    where no two symbols tie (the networks), it is what a near-zero temperature samples."""
    model = registry.get(kind).model
    stoi = model.vocab.stoi
    for prefix in ["", "e", "ja"]:
        name = greedy(model, prefix)
        assert name.startswith(prefix) and len(name) > 0
        ends = len(name) < MAX_NAME_LEN  # else cut at the longest name (a loop: 'elilil...')
        for k in range(len(prefix), len(name) + ends):
            lp = window_log_probs(model, name[:k])
            if k == 0:
                lp[0] = -math.inf  # a name has a letter
            chosen = stoi[name[k]] if k < len(name) else 0
            assert lp[chosen] == lp.max(), (name, k)
        if kind != "bigram" and ends:  # counts tie often; there the sampler may take another
            # of them; a greedy loop never ends, and sampling draws again a name past max_len
            cold = draw_names(model, 1, torch.Generator().manual_seed(0), temperature=1e-6,
                              prefix=prefix, max_len=64)[0]
            assert name == cold


# --- attention ------------------------------------------------------------------------------


def plain_attention(model, name: str) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The Transformer written out on its state dict's tensors: every block's attention
    weights (n_head, T, T), and the logits (T, V) computed with them."""
    maps, logits, _ = plain_blocks(model, [0] + [model.vocab.stoi[c] for c in name])
    return maps, logits


def plain_blocks(model, x: list[int]):
    """The Transformer on the ids x (from position 0), written out: every block's attention
    weights (n_head, T, T), the logits (T, V), and every block's GELU outputs (T, 4 n_embd)."""
    sd = {k: v.double() for k, v in model.state_dict().items()}
    cfg = model.cfg
    C, nh = cfg.n_embd, cfg.n_head
    hs = C // nh
    T = len(x)

    def ln(h, p):
        mu = h.mean(-1, keepdim=True)
        var = ((h - mu) ** 2).mean(-1, keepdim=True)
        return (h - mu) / torch.sqrt(var + 1e-5) * sd[p + ".weight"] + sd[p + ".bias"]

    h = sd["wte.weight"][x] + sd["wpe.weight"][:T]  # (T, C)
    maps, gelus = [], []
    for i in range(cfg.n_layer):
        b = f"blocks.{i}."
        a = ln(h, b + "ln_1")
        qkv = a @ sd[b + "attn.qkv.weight"].T + sd[b + "attn.qkv.bias"]
        q, k, v = (qkv[:, j * C:(j + 1) * C].reshape(T, nh, hs).transpose(0, 1) for j in range(3))
        w = torch.zeros(nh, T, T, dtype=torch.float64)
        for t in range(T):  # a softmax over positions 0..t, by hand
            s = torch.einsum("hd,hsd->hs", q[:, t], k[:, : t + 1]) / math.sqrt(hs)
            e = torch.exp(s - s.max(dim=1, keepdim=True).values)
            w[:, t, : t + 1] = e / e.sum(dim=1, keepdim=True)
        maps.append(w)
        y = (w @ v).transpose(0, 1).reshape(T, C)
        h = h + y @ sd[b + "attn.proj.weight"].T + sd[b + "attn.proj.bias"]
        a = ln(h, b + "ln_2")
        g = F.gelu(a @ sd[b + "mlp.0.weight"].T + sd[b + "mlp.0.bias"])
        gelus.append(g)
        h = h + g @ sd[b + "mlp.2.weight"].T + sd[b + "mlp.2.bias"]
    logits = ln(h, "ln_f") @ sd["head.weight"].T + sd["head.bias"]
    return maps, logits, gelus


@pytest.mark.parametrize("name", ["", "emma", "abcdefg"])
def test_attention_weights_are_the_blocks_recomputed_by_hand(registry, name):
    model = registry.get("transformer").model
    a = attention(model, name)
    w = torch.tensor(a.weights, dtype=torch.float64)  # (n_layer, n_head, T, T)
    T = len(name) + 1
    assert a.positions == [".", *name]
    assert w.shape == (model.cfg.n_layer, model.cfg.n_head, T, T)
    assert torch.allclose(w.sum(dim=-1), torch.ones(w.shape[:-1], dtype=torch.float64),
                          atol=1e-6)
    assert bool((w.triu(diagonal=1) == 0).all())
    maps, logits = plain_attention(model, name)
    for layer, want in zip(w, maps, strict=True):
        assert torch.allclose(layer, want, atol=1e-5)
    assert torch.allclose(torch.tensor(a.mean, dtype=torch.float64), w.mean(dim=1), atol=1e-12)
    # the weights written out reproduce the model's own predictions: they are the ones it uses
    with torch.no_grad():
        mine = model.sequence_logits(torch.tensor([[0, *model.vocab.encode(name)]]))[0]
    assert torch.allclose(mine.double(), logits, atol=1e-4)


def test_attention_refuses_a_name_longer_than_the_block(registry):
    model = registry.get("transformer").model
    attention(model, "a" * (model.block_size - 1))
    with pytest.raises(ValueError, match="at most"):
        attention(model, "a" * model.block_size)


# --- the hidden layers' health --------------------------------------------------------------


def test_sample_words_is_fixed_distinct_and_makes_enough_predictions():
    a = sample_words(TINY_NAMES, 100)
    assert a == sample_words(list(reversed(TINY_NAMES)), 100)  # the order given does not count
    assert len(set(a)) == len(a)
    assert sum(len(w) + 1 for w in a) >= 100
    assert sum(len(w) + 1 for w in a[:-1]) < 100
    assert sorted(sample_words(TINY_NAMES, 10**9)) == sorted(set(TINY_NAMES))


def stats_by_hand(a: np.ndarray, fn: str):
    """(mean, std, saturated share, dead units, histogram) of (rows, units) activations."""
    if fn == "tanh":
        sat = np.abs(a) > SATURATED
        saturated, dead = sat.mean(), np.flatnonzero(sat.all(axis=0))
        lo, hi = -1.0, 1.0
    else:
        saturated, dead = None, np.flatnonzero((a <= 0).all(axis=0))
        flat = np.sort(a.flatten())
        top = flat[max(1, math.ceil(HIST_TOP * flat.size)) - 1]  # the 99.9th percentile
        lo, hi = -0.2, math.ceil(max(top, 0.8) * 10) / 10
    hist, _ = np.histogram(np.clip(a, lo, hi), bins=HIST_BINS, range=(lo, hi))
    return a.mean(), a.std(), saturated, dead.tolist(), hist.tolist()


def windows_by_hand(model, words: list[str]) -> torch.Tensor:
    """(N, block_size): the '.'-padded window before each prediction of the words."""
    B = model.block_size
    rows = []
    for w in words:
        ids = [0] * B + [model.vocab.stoi[c] for c in w] + [0]
        rows += [ids[i:i + B] for i in range(len(w) + 1)]
    return torch.tensor(rows)


def mlp_activations(model, words: list[str]) -> list[np.ndarray]:
    """Every hidden layer's tanh of an MLP, written out: embeddings, linear, LayerNorm, tanh."""
    sd = {k: v.double() for k, v in model.state_dict().items()}
    x = sd["C.weight"][windows_by_hand(model, words)].flatten(1)
    out = []
    for i in range(model.cfg.n_layers):
        z = x @ sd[f"hidden.{4 * i}.weight"].T + sd[f"hidden.{4 * i}.bias"]
        mu, var = z.mean(-1, keepdim=True), z.var(-1, unbiased=False, keepdim=True)
        z = (z - mu) / torch.sqrt(var + 1e-5) * sd[f"hidden.{4 * i + 1}.weight"] \
            + sd[f"hidden.{4 * i + 1}.bias"]
        x = torch.tanh(z)
        out.append(x.numpy())
    return out


def check(got, a: np.ndarray, fn: str) -> None:
    mean, std, saturated, dead, hist = stats_by_hand(a, fn)
    assert got.rows == a.shape[0] and got.units == a.shape[1] and got.activation == fn
    assert math.isclose(got.mean, mean, abs_tol=1e-5)
    assert math.isclose(got.std, std, rel_tol=1e-4)
    assert (got.saturated is None) == (saturated is None)
    if saturated is not None:
        assert math.isclose(got.saturated, saturated, abs_tol=2 / a.size)  # a value at 0.97
    assert got.dead == dead
    assert sum(got.histogram) == a.size
    assert np.abs(np.array(got.histogram) - np.array(hist)).sum() <= 0.002 * a.size  # bin edges


def test_mlp_health_is_its_tanh_layers_recomputed_by_hand(registry):
    model = registry.get("mlp").model
    words = sample_words(TINY_NAMES, 200)
    (got,) = layer_health(model, words)  # the tiny MLP has one hidden layer
    (a,) = mlp_activations(model, words)
    assert got.label == "hidden layer 1"
    check(got, a, "tanh")


def test_a_saturated_or_silent_unit_is_dead():
    """Units forced to saturate on every context are reported dead, and only they."""
    model = KINDS["mlp"].build(Vocab.from_words(TINY_NAMES), KINDS["mlp"].tiny).eval()
    lin = model.hidden[0]
    with torch.no_grad():
        lin.weight[:] = 0
        lin.bias[:] = 0
        model.hidden[1].weight[:] = 0  # LayerNorm gain 0: its output is its shift
        model.hidden[1].bias[:] = 0.1
        model.hidden[1].bias[[2, 5]] = 5.0  # tanh(5) > 0.97 on every row: dead
    (got,) = layer_health(model, ["emma", "ava"])
    assert got.dead == [2, 5]
    assert math.isclose(got.saturated, 2 / model.cfg.n_hidden)


def wavenet_activations(model, words: list[str]) -> list[np.ndarray]:
    """Every level's tanh of a WaveNet, written out on its state dict: each prediction's
    window of block_size ids embedded, neighbours joined two at a time, a linear map (no bias),
    LayerNorm, tanh; a row per window and fused position."""
    sd = {k: v.double() for k, v in model.state_dict().items()}
    x = sd["C.weight"][windows_by_hand(model, words)]  # (N, B, n_embd)
    out = []
    for i in range(model.cfg.n_levels):
        N, T, C = x.shape
        z = x.reshape(N, T // 2, 2 * C) @ sd[f"levels.{i}.linear.weight"].T
        mu, var = z.mean(-1, keepdim=True), z.var(-1, unbiased=False, keepdim=True)
        x = torch.tanh((z - mu) / torch.sqrt(var + 1e-5) * sd[f"levels.{i}.norm.weight"]
                       + sd[f"levels.{i}.norm.bias"])
        out.append(x.reshape(-1, x.shape[-1]).numpy())
    return out


def transformer_mlp_activations(model, words: list[str]) -> list[np.ndarray]:
    """Every block's GELU (its MLP's hidden layer) of a Transformer, from the blocks written
    out (`plain_blocks`): a row per prediction. A name that fits the block is read from its
    start ('.' + the name: a prediction at each position); a longer one's later predictions are
    read at the last position of the window of block_size ids before them."""
    T = model.block_size
    rows: list[list[np.ndarray]] = [[] for _ in range(model.cfg.n_layer)]
    for w in words:
        ids = [0] + [model.vocab.stoi[c] for c in w] + [0]
        reads = [(ids[:T], range(min(T, len(ids) - 1)))]
        reads += [(ids[t - T + 1:t + 1], [T - 1]) for t in range(T, len(ids) - 1)]
        for x, positions in reads:
            gelus = plain_blocks(model, x)[2]
            for layer, g in zip(rows, gelus, strict=True):
                layer.append(g[list(positions)].numpy())
    return [np.concatenate(layer) for layer in rows]


def test_wavenet_health_is_its_levels_recomputed_by_hand(registry):
    model = registry.get("wavenet").model
    words = sample_words(TINY_NAMES, 200)
    got = layer_health(model, words)
    by_hand = wavenet_activations(model, words)
    assert [g.label for g in got] == [f"level {i + 1}" for i in range(len(by_hand))]
    preds = sum(len(w) + 1 for w in words)
    for i, (g, a) in enumerate(zip(got, by_hand, strict=True)):
        assert a.shape[0] == preds * model.block_size // 2 ** (i + 1)  # a row per position
        check(g, a, "tanh")


def test_transformer_health_is_its_mlp_blocks_recomputed_by_hand(registry):
    model = registry.get("transformer").model
    words = sample_words(TINY_NAMES, 200)
    assert any(len(w) >= model.block_size for w in words)  # the windows past the block too
    got = layer_health(model, words)
    by_hand = transformer_mlp_activations(model, words)
    assert [g.label for g in got] == [f"block {i + 1} MLP" for i in range(len(by_hand))]
    for g, a in zip(got, by_hand, strict=True):
        assert a.shape == (sum(len(w) + 1 for w in words), 4 * model.cfg.n_embd)
        check(g, a, "gelu")


def test_bigrams_have_no_hidden_layers(registry):
    assert layer_health(registry.get("bigram").model, ["emma"]) == []
