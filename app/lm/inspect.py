"""Looking inside a model: the next-letter distribution after a prefix (as sampling sees it),
the Transformer's attention weights, and the health of the hidden layers (as in the lectures'
diagnostics: histograms of the activations, saturated tanh units, dead units).

Pure torch on top of the one model interface (app/lm/base.py); the web layer only draws these.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from app.lm.base import LanguageModel
from app.lm.constraints import Constraint
from app.lm.sampling import Knobs, Messages, exact_kind, exact_table, filtered, plain
from app.lm.vocab import MAX_NAME_LEN

# --- the next letter ------------------------------------------------------------------------


@dataclass(frozen=True)
class NextLetters:
    """What the model says after `prefix`, symbol by symbol in vocabulary order ('.' = the end).

    log_probs is the model's own distribution (temperature 1, as scoring and the score page's
    steps give it). kept says which symbols survive the knobs (app/lm/sampling.py, `filtered`);
    fits which can still lead to a name that fits the constraint (its automaton not dead, enough
    letters left, the end only in an accepting state between min_len and max_len letters).
    sampling is what the next step is drawn with, 0 for every symbol cut by either:
    - exact (the kinds sampled exactly, `exact_kind`): the sampler's own conditional
      P(next | prefix, the name fits) from the backward messages (`Messages`), which is what
      the exact sampler draws this step from (max_len included, even with no other constraint);
      `mass` is then P(the name fits | prefix) at the knobs;
    - not exact (the others, sampled by rejection): the knobs' distribution renormalised over
      the symbols that fit. The rejection sampler draws from the exact conditional, which would
      need every continuation's probability; this is an approximation of it (equal to it when
      only max_len constrains and the prefix is short), and `mass` is None."""

    prefix: str
    log_probs: list[float]
    sampling: list[float]
    kept: list[bool]
    fits: list[bool]
    exact: bool
    mass: float | None
    greedy: str  # the name the most likely symbol that fits makes at every step from the prefix


def window(model: LanguageModel, text: str) -> torch.Tensor:
    """The (1, block_size) '.'-padded context after `text` (letters of the model's vocabulary)."""
    B = model.block_size
    return torch.tensor([([0] * B + model.vocab.encode(text))[-B:]], dtype=torch.long)


def can_fit(c: Constraint, text: str) -> torch.Tensor:
    """(V,) bool: which symbols after `text` (which starts with c.prefix) can still lead to a
    name that fits c, whatever the model: the automaton's structure and the length bounds."""
    V = len(c.vocab)
    t = len(text)
    state = c.automaton.run(c.vocab.encode(text))
    out = torch.zeros(V, dtype=torch.bool)
    if state < 0:
        return out
    out[0] = bool(c.automaton.accepting[state]) and max(c.min_len, 1) <= t <= c.max_len
    nxt = c.automaton.delta[state, 1:]
    alive = nxt >= 0
    out[1:] = alive & (t + 1 + c.to_accept[nxt.clamp_min(0)] <= c.max_len)
    return out


@torch.no_grad()
def next_letters(model: LanguageModel, prefix: str, knobs: Knobs | None = None,
                 constraint: Constraint | None = None) -> NextLetters:
    """The distribution over the symbol after `prefix` (normalised, in the vocabulary), and
    the one sampling with these knobs and this constraint (None: names of 1..MAX_NAME_LEN
    letters; its prefix must be `prefix`) draws it from. An empty prefix cannot end (a name has
    at least one letter), as in the sampler."""
    knobs = knobs or Knobs()
    c = constraint or plain(model.vocab, prefix, MAX_NAME_LEN)
    if c.prefix != prefix:
        raise ValueError(f"the constraint's prefix {c.prefix!r} is not {prefix!r}")
    raw = model(window(model, prefix))[0]  # (1, V)
    logp = torch.log_softmax(raw.double(), dim=1)[0]
    kept = filtered(raw.float(), knobs, first=not prefix)[0] > -torch.inf
    fits = can_fit(c, prefix)
    mass = None
    if exact_kind(model):
        V = len(model.vocab)
        every = model(torch.arange(V)[:, None])[0]  # (V, V): after each symbol, as sampled
        msgs = Messages.of(exact_table(model, every, knobs, prefix), c)
        ids = model.vocab.encode(prefix)
        w = msgs.Q[ids[-1] if ids else 0] * msgs.G[len(prefix)][c.start_state]
        mass = msgs.mass
    else:
        w = torch.softmax(filtered(raw.double(), knobs, first=not prefix), dim=1)[0]
        w = torch.where(fits, w, 0.0)
    total = float(w.sum())
    draw = w / total if total > 0 else w
    return NextLetters(prefix=prefix, log_probs=logp.tolist(), sampling=draw.tolist(),
                       kept=kept.tolist(), fits=fits.tolist(), exact=exact_kind(model),
                       mass=mass, greedy=greedy(model, prefix, c))


@torch.no_grad()
def greedy(model: LanguageModel, prefix: str, constraint: Constraint | None = None) -> str:
    """The prefix continued by the most likely symbol that can still fit the constraint (None:
    1..MAX_NAME_LEN letters) at each step until the end: at most max_len forward passes of one
    row. Stops where no symbol can fit (a constraint the model cannot meet)."""
    c = constraint or plain(model.vocab, prefix, MAX_NAME_LEN)
    name = prefix
    while True:
        logits = filtered(model(window(model, name))[0].float(), first=not name)[0]
        logits = logits.masked_fill(~can_fit(c, name), -torch.inf)
        if not bool((logits > -torch.inf).any()):
            break
        ix = int(logits.argmax())
        if ix == 0:
            break
        name += model.vocab.itos[ix]
    return name


# --- attention ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attention:
    """One name's attention: weights[layer][head][t][s] is how much position t (the start
    mark, then each letter) attends to position s <= t; mean[layer] averages the heads."""

    name: str
    positions: list[str]  # '.', then the name's letters
    weights: list[list[list[list[float]]]]
    mean: list[list[list[float]]]


def max_attention_letters(model: LanguageModel) -> int:
    """The longest name whose attention is shown: its start mark and letters fill the block."""
    return model.block_size - 1


@torch.no_grad()
def attention(model: LanguageModel, name: str) -> Attention:
    """The attention of a model that has it (`attention_weights`) over '.' + name (normalised,
    at most `max_attention_letters` letters: ValueError beyond)."""
    if len(name) > max_attention_letters(model):
        raise ValueError(f"{name!r} has {len(name)} letters; the model reads at most "
                         f"{max_attention_letters(model)} from the start")
    x = torch.tensor([[0, *model.vocab.encode(name)]], dtype=torch.long)
    w = model.attention_weights(x)[0].double()  # (n_layer, n_head, T, T)
    return Attention(name=name, positions=[".", *name], weights=w.tolist(),
                     mean=w.mean(dim=1).tolist())


# --- the hidden layers' health --------------------------------------------------------------

SATURATED = 0.97  # |tanh| above this: the unit passes almost no gradient (the lectures' mark)
HIST_BINS = 40
N_CONTEXTS = 2000  # predictions of the fixed sample of names the statistics are taken over


@dataclass(frozen=True)
class LayerHealth:
    """One hidden layer's activations over the sample (every prediction of its names)."""

    label: str
    activation: str  # 'tanh', 'gelu' or 'relu'
    units: int
    rows: int  # activations per unit: one per prediction (per fused position, in a WaveNet)
    mean: float
    std: float
    saturated: float | None  # share of |h| > SATURATED (tanh only; None for GELU and ReLU)
    dead: list[int]  # units saturated (tanh) or at most 0 (GELU, ReLU) on every row
    histogram: list[int]  # HIST_BINS counts of the activations between lo and hi
    lo: float
    hi: float

    @property
    def dead_share(self) -> float:
        return len(self.dead) / self.units


def sample_words(words: list[str], predictions: int = N_CONTEXTS, seed: int = 0) -> list[str]:
    """A fixed sample of the distinct words: shuffled with `seed`, taken until they make at
    least `predictions` predictions (letters + the end each), or all of them."""
    pool = sorted(set(words))
    order = torch.randperm(len(pool), generator=torch.Generator().manual_seed(seed)).tolist()
    out, n = [], 0
    for i in order:
        if n >= predictions:
            break
        out.append(pool[i])
        n += len(pool[i]) + 1
    return out


HIST_TOP = 0.999  # GELU and ReLU: the histogram's axis ends at this quantile of the activations


def histogram_range(activation: str, a: torch.Tensor) -> tuple[float, float]:
    """tanh's whole range; for GELU and ReLU from their least value (GELU's is about -0.17) to
    the HIST_TOP quantile of the activations, rounded up (the last bin then holds the few
    larger ones: up to the largest, a handful of outliers would squeeze the rest into a bin or
    two)."""
    if activation == "tanh":
        return -1.0, 1.0
    lo = -0.2 if activation == "gelu" else 0.0
    flat = a.flatten()
    top = float(flat.kthvalue(max(1, math.ceil(HIST_TOP * flat.numel()))).values)
    return lo, math.ceil(max(top, lo + 1.0) * 10) / 10


@torch.no_grad()
def layer_health(model: LanguageModel, words: list[str]) -> list[LayerHealth]:
    """The statistics of each of the model's `activation_layers` over every prediction of
    `words` (a sample: `sample_words`), computed by the layers as written."""
    out = []
    for (label, _, fn), a in zip(model.activation_layers(), model.hidden_activations(words),
                                 strict=True):
        a = a.double()  # (rows, units)
        if fn == "tanh":
            sat = a.abs() > SATURATED
            saturated, dead = float(sat.float().mean()), sat.all(dim=0)
        else:
            saturated, dead = None, (a <= 0).all(dim=0)
        lo, hi = histogram_range(fn, a)
        hist = torch.histc(a.clamp(lo, hi), bins=HIST_BINS, min=lo, max=hi)
        out.append(LayerHealth(
            label=label, activation=fn, units=a.shape[1], rows=a.shape[0],
            mean=float(a.mean()), std=float(a.std(unbiased=False)), saturated=saturated,
            dead=dead.nonzero().squeeze(1).tolist(), histogram=[int(c) for c in hist.tolist()],
            lo=lo, hi=hi))
    return out
