"""Batched sampling for any model: all n names advance one character per forward pass.

A sampling run is written as a generator (`sampler`): it yields its decoder (the model's view of
the names still growing: `LanguageModel.decoder`) and is sent their logits back. `drive` runs one
or several of them; runs on the base window `Decoder` share one forward pass per step: the
several requests that app/serving/batching.py serves together. Requests with the same options can
also be one run (`group_sampler`), which shares each step's arithmetic too. Each request keeps its
own torch.Generator and draws only for its own rows, so its names do not depend on the others.

Names that fit (app/lm/constraints.py: prefix, suffix, contains, pattern, min_len, max_len)
are sampled from the sampler's own distribution conditioned on fitting, P(name | fits), never
from a masked one (masking a letter at one step changes what the later steps are worth):
- a kind whose next letter depends only on the previous one (block_size 1: the bigram, the
  neural bigram) is sampled exactly (`exact_sampler`): backward messages over (previous letter,
  automaton state, length) give, for every choice, the probability that a name going on from
  it fits; drawing each step in proportion to probability x that is drawing from P(name | fits),
  and the first message is the exact mass of the names that fit;
- the other kinds by rejection (`group_sampler`): each row is a draw from the unconstrained
  sampler, kept if it fits. A row is dropped as soon as it cannot fit any more (its automaton
  state is dead, or too few letters are left to reach an accepting state, or it ended too
  early or too late): that only saves the forward passes of draws that would be rejected, so
  the names kept are still exact draws from P(name | fits), and fits / draws estimates the mass.
  Rejection rather than sequential Monte Carlo: SMC's resampled particles are correlated and its
  names follow the target only as the particles grow in number, while rejection's are
  independent and exact at any count; its cost (1 / mass draws a name) is bounded by a count of
  draws (app/domain/services.py), and the answer says how many it took.
A name longer than max_len is never cut to fit: it does not fit (issue 21), so it is drawn again.
A draw (a round of rows) that its deadline stops partway gives none of its rows, only whole
ones count: the rows that had ended by then are the short ones (kept, they would favour short
names), and its rejections would count as draws while its growing rows did not (the estimated
mass would run low).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from dataclasses import dataclass, field, fields
from typing import Any, Self, TypeVar

import torch

from app.lm.base import Decoder, LanguageModel, decode_rows, distinct_logits
from app.lm.constraints import Automaton, Constraint
from app.lm.deadline import Deadline, passed
from app.lm.scoring import prefix_log_prob
from app.lm.vocab import BOUNDARY, MAX_NAME_LEN, Vocab

R = TypeVar("R")
Steps = Generator[Decoder, torch.Tensor, R]  # yields its decoder, is sent its logits (L, V)


# --- the sampling knobs ------------------------------------------------------------------------


@dataclass(frozen=True)
class Knobs:
    """How each step's next-letter distribution is reshaped before drawing, in this order:
    temperature (divides the logits), top_k (the k most likely letters, ties at the k-th
    included), top_p (the most likely letters whose mass, renormalised after top_k, reaches p:
    a letter is kept when the letters strictly more likely than it hold less than p; ties kept
    together), min_p (letters at least min_p times as likely as the most likely one; the most
    likely letter survives every filter, so min_p reads the same before or after the others)."""

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    min_p: float = 0.0

    @classmethod
    def of(cls, params: Any, **given: Any) -> Self:
        """This class's fields read by name from `params` (a request's parameters:
        app/domain/params.py's SampleParams, NextParams), but those `given`."""
        return cls(**{f.name: getattr(params, f.name) for f in fields(cls)
                      if f.name not in given}, **given)

    def check(self, V: int) -> None:
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.top_k is not None and not 1 <= self.top_k <= V:
            raise ValueError(f"top_k must be between 1 and {V}, got {self.top_k}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be > 0 and <= 1, got {self.top_p}")
        if not 0 <= self.min_p < 1:
            raise ValueError(f"min_p must be >= 0 and < 1, got {self.min_p}")


@dataclass(frozen=True)
class SamplingOptions(Knobs):
    """Everything a sampling run's names depend on but their count, generator and deadline: the
    knobs, and the constraint the names fit (None: any name of 1..32 letters, `plain`). Frozen
    and hashable (a Constraint compares by identity: app/domain/services.py makes one per distinct
    request): requests with equal options are the rows of one `group_sampler`."""

    constraint: Constraint | None = None


PLAIN = SamplingOptions()


def filter_logits(logits: torch.Tensor, knobs: Knobs) -> tuple[torch.Tensor, torch.Tensor]:
    """(L, V) logits -> (the logits sampled from: shifted so each row's best is 0, divided by
    the temperature, -inf where a filter removed the letter; the kept mask (L, V)). The
    distribution drawn from is their softmax (`next_letter_probs`). Row by row throughout, so a
    row's result does not depend on the others (batching gives each request its own bits)."""
    # Shift the best logit to 0 before dividing, and divide by at least 1e-30 (a float32,
    # unlike 1e-300): a tiny temperature then gives 0 and -inf (greedy), never nan.
    logits = logits - logits.max(dim=1, keepdim=True).values
    if knobs.temperature != 1:
        logits = logits / max(knobs.temperature, 1e-30)
    V = logits.shape[1]
    if knobs.top_k is not None and knobs.top_k < V:
        kth = torch.topk(logits, knobs.top_k, dim=1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, -torch.inf)
    if knobs.top_p is not None and knobs.top_p < 1:
        p = torch.softmax(logits, dim=1).contiguous()
        ascending = p.sort(dim=1).values
        cum = ascending.cumsum(dim=1)
        at_most = torch.searchsorted(ascending, p, right=True)  # (L, V): letters with p_i <= p_j
        above = cum[:, -1:] - cum.gather(1, at_most - 1)  # mass of the letters more likely
        logits = logits.masked_fill(above >= knobs.top_p, -torch.inf)
    if knobs.min_p > 0:  # p_j / p_max = exp(logit_j), the best logit being 0
        logits = logits.masked_fill(logits < math.log(knobs.min_p), -torch.inf)
    return logits, logits > -torch.inf


def filtered(logits: torch.Tensor, knobs: Knobs | None = None, first: bool = False,
             ) -> torch.Tensor:
    """The logits a sampling step draws from (`filter_logits`), with the end of the name cut
    at the `first` step (a name has at least one letter). The sampler and the next-letter view
    (app/lm/inspect.py) both call it."""
    if first:
        logits = logits.clone()
        logits[:, 0] = -torch.inf
    return filter_logits(logits, knobs or Knobs())[0]


def next_letter_probs(logits: torch.Tensor, knobs: Knobs) -> tuple[torch.Tensor, torch.Tensor]:
    """(L, V) logits -> (the distribution the sampler draws the next letter from, the kept
    mask): `filter_logits`, normalised."""
    filtered, kept = filter_logits(logits, knobs)
    return torch.softmax(filtered, dim=1), kept


# --- entry points ------------------------------------------------------------------------------


def drive(model: LanguageModel, runs: list[Steps[R]]) -> list[R | Exception]:
    """Run sampling generators together to the end (`drive_steps`)."""
    return finish(drive_steps(model, runs))


def finish(steps: Generator[Any, None, R]) -> R:
    """Run a generator to its end; its return value."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


@torch.no_grad()
def drive_steps(model: LanguageModel, runs: list[Steps[R]],
                finished: Callable[[int, Any], None] | None = None,
                ) -> Generator[int, None, list[R | Exception]]:
    """Run sampling generators together: each step, every run still going yields its decoder
    and is sent the logits of its own rows. Runs whose decoders are the base window `Decoder`
    share one forward pass (each distinct window once) if the model's rows are independent of
    the batch (`rows_independent`); otherwise, and for a kind's own decoder (the Transformer's
    KVDecoder keeps state per history: requests with the same options share one through
    `group_sampler` instead), each run gets its logits alone.
    Yields after each step the rows it ran (the model thread may pause there:
    app/serving/batching.py; nothing a run draws depends on when). Returns each run's result, or
    the exception it raised (which ends only that run); `finished(i, result)` hears of each as it
    ends."""
    results: list[Any] = [None] * len(runs)
    live: list[tuple[int, Steps[R], Decoder]] = []

    def advance(i: int, run: Steps[R], logits: torch.Tensor | None) -> None:
        try:
            dec = next(run) if logits is None else run.send(logits)
        except StopIteration as done:
            results[i] = done.value
        except Exception as e:  # the run's own error, returned to its caller
            results[i] = e
        else:
            live.append((i, run, dec))
            return
        if finished is not None:
            finished(i, results[i])

    for i, run in enumerate(runs):
        advance(i, run, None)
    while live:
        step, live = live, []
        rows = sum(len(d.ctx) for _, _, d in step)
        shared = [(i, run, d) for i, run, d in step
                  if type(d) is Decoder and model.rows_independent]
        if len(shared) < 2:
            shared = []
        for i, run, d in step:
            if all(i != j for j, _, _ in shared):
                advance(i, run, d.logits())  # (L, V), alone
        if shared:
            sizes = [len(d.ctx) for _, _, d in shared]  # before advance() moves them on
            logits = distinct_logits(model, torch.cat([d.ctx for _, _, d in shared]))
            for (i, run, _), part in zip(shared, logits.split(sizes), strict=True):
                advance(i, run, part)
        yield rows
    return results


@dataclass(frozen=True)
class Draw:
    """One request's share of a `group_sampler`: its names, its generator, its deadline."""

    n: int
    generator: torch.Generator
    deadline: Deadline | None = None


@dataclass(frozen=True)
class Drawn:
    """What one Draw gave: the names that fit (in draw order) and their log-probabilities,
    how many draws there were (`drawn`: n, or 0 when the deadline stopped the Draw partway: its
    rows are dropped, `timed_out`) and how many fit; `mass`: the exact probability that a draw
    fits, where the sampler computed it (an exact kind), else None (estimate it as fits /
    drawn)."""

    names: list[str]
    log_probs: list[float]
    drawn: int
    fits: int
    mass: float | None = None
    timed_out: bool = False  # its deadline (a safety net) stopped it before every draw ended


def sampler(
    model: LanguageModel,
    n: int,
    generator: torch.Generator,
    options: SamplingOptions = PLAIN,
    deadline: Deadline | None = None,
) -> Steps[Drawn]:
    """n draws as steps for `drive`: yields the decoder of the growing names, is sent their
    logits; returns the names that fit, with each name's log-probability under the model at
    temperature 1, end token included (what scoring.log_probs gives, up to float32 rounding),
    collected on the way. Deterministic for a given generator state; never touches the global
    RNG. Checks `deadline` before each step: once passed, it stops with no names
    (`timed_out`)."""
    (result,) = yield from group_sampler(model, [Draw(n, generator, deadline)], options)
    return result


def plain(vocab: Vocab, prefix: str = "", max_len: int = 32) -> Constraint:
    """The constraint 'starts with prefix, 1..max_len letters' (`prefix` normalised and in the
    vocabulary)."""
    if not 1 <= max_len <= MAX_NAME_LEN:
        raise ValueError(f"max_len must be between 1 and {MAX_NAME_LEN}, got {max_len}")
    if len(prefix) > max_len:
        raise ValueError(f"prefix {prefix!r} is longer than max_len={max_len}")
    return Constraint(vocab, Automaton.everything(len(vocab)), prefix, 1, max_len)


def exact_kind(model: LanguageModel) -> bool:
    """Whether the next letter depends only on the previous one: then `exact_sampler` applies."""
    return model.block_size == 1


def group_sampler(
    model: LanguageModel,
    draws: list[Draw],
    options: SamplingOptions = PLAIN,
) -> Steps[list[Drawn]]:
    """`sampler` for several requests with the same options at once: their names are the rows
    of one decoder and go through each step's arithmetic together, so a step costs a few tensor
    operations for the whole group instead of a few dozen per request. Each draw keeps its own
    generator (one uniform per name of its own per step, as alone) and its own deadline; every
    other operation is row by row (elementwise, or along a row: the max, the cumulative sum,
    log_softmax), so each draw's names and log-probabilities are, to the bit, what `sampler`
    gives it alone (tests/test_batching.py compares the bytes). Exact kinds: `exact_sampler`;
    the others: rejection (the module's docstring)."""
    if any(d.n < 1 for d in draws):
        raise ValueError(f"n must be >= 1, got {min(d.n for d in draws)}")
    options.check(len(model.vocab))
    c = options.constraint or plain(model.vocab)
    if model.training:  # eval() walks every submodule: ~0.2 ms a call on the MLP
        model.eval()
    if exact_kind(model):
        return (yield from exact_sampler(model, draws, options, c))
    return (yield from rejection_sampler(model, draws, options, c))


def _uniforms(draws: list[Draw], rows: torch.Tensor) -> torch.Tensor:
    """One uniform per name per step, finished or not: the names for a seed do not depend on
    which names finished when. (L,): those of the rows still going."""
    return (torch.rand(draws[0].n, generator=draws[0].generator) if len(draws) == 1 else
            torch.cat([torch.rand(d.n, generator=d.generator) for d in draws]))[rows]


def _stop_checks(draws: list[Draw], stopped: list[int], t: int, last: int) -> bool:
    """Mark the draws whose deadline passed as stopped at step t (`last`: not stopped); True
    when all have stopped. Checked between steps."""
    for k, d in enumerate(draws):
        if stopped[k] == last and passed(d.deadline):
            stopped[k] = t
    return all(s < last for s in stopped)


def _results(draws: list[Draw], names: list[str], totals: list[float], fit: list[bool],
             done_at: list[int], stopped: list[int], mass: float | None) -> list[Drawn]:
    """Each draw's Drawn: its rows if all of them ended before it stopped, else none of them
    (`timed_out`: only whole draws count, the module's docstring)."""
    results, first = [], 0
    for d, stop in zip(draws, stopped, strict=True):
        mine = range(first, first + d.n)
        first += d.n
        if any(done_at[r] >= stop for r in mine):
            results.append(Drawn([], [], drawn=0, fits=0, mass=mass, timed_out=True))
            continue
        kept = [r for r in mine if fit[r]]
        results.append(Drawn([names[r] for r in kept], [totals[r] for r in kept],
                             drawn=d.n, fits=len(kept), mass=mass))
    return results


@torch.no_grad()
def rejection_sampler(model: LanguageModel, draws: list[Draw], knobs: Knobs,
                      c: Constraint) -> Steps[list[Drawn]]:
    """Draw each row from the unconstrained sampler; keep it if it fits (module docstring)."""
    B = model.block_size
    N = sum(d.n for d in draws)
    last = c.max_len + 1  # steps 0..max_len: at step max_len a row can only end
    prefix_ids = model.vocab.encode(c.prefix)
    start = ([0] * B + prefix_ids)[-B:]
    out = torch.zeros(N, c.max_len + 1, dtype=torch.long)  # letter ids drawn, 0 after the end
    if prefix_ids:
        out[:, : len(prefix_ids)] = torch.tensor(prefix_ids)
    total = torch.full((N,), prefix_log_prob(model, c.prefix), dtype=torch.float64)
    open_after_prefix = c.open_after_prefix
    delta, accepting = c.automaton.delta, c.automaton.accepting
    to_accept = None if open_after_prefix else c.to_accept
    state = torch.full((N,), c.start_state, dtype=torch.long)
    fit = torch.zeros(N, dtype=torch.bool)
    done_at = torch.full((N,), last, dtype=torch.long)  # the step at which each row ended
    # The step at which each draw's deadline stopped it (`last`: it did not). A row that ended
    # at step t has t letters: a draw stopped at step s is whole if all its rows ended before s.
    stopped = [last] * len(draws)
    rows = torch.arange(N)  # (L,): the rows still growing
    decoder = model.decoder(torch.tensor([start], dtype=torch.long).repeat(N, 1))  # (L, B)
    for t in range(len(prefix_ids), last):
        if _stop_checks(draws, stopped, t, last):
            break
        u = _uniforms(draws, rows)  # (L,)
        raw = yield decoder  # (L, V): the decoder's logits (batched with other runs by drive)
        logits = filtered(raw.float(), knobs, first=t == 0)
        # Inverse CDF: P(ix = j) = w_j / sum(w), with w = exp(logits) (the softmax, unnormalised).
        # u * total < total, so ix < V; a j with w_j = 0 can never be drawn.
        cum = logits.exp().cumsum(dim=1)  # (L, V)
        ix = (cum <= u[:, None] * cum[:, -1:]).sum(dim=1)  # (L,)
        logp = torch.log_softmax(raw.double(), dim=1)  # at temperature 1, as scoring does
        total.index_add_(0, rows, logp.gather(1, ix[:, None]).squeeze(1))
        out[rows, t] = ix
        ended = ix == 0
        if open_after_prefix:  # the state never changes and always accepts: the lengths only
            fit[rows[ended]] = t >= c.min_len
            going = ~ended if t + 1 <= c.max_len else torch.zeros_like(ended)
        else:
            s = state[rows]
            fit[rows[ended]] = accepting[s[ended]] & (t >= c.min_len)
            nxt = torch.where(ended, -1, delta[s, ix])
            # Going on only while the name can still fit: a live state, enough letters left.
            going = (nxt >= 0) & (t + 1 + to_accept[nxt.clamp_min(0)] <= c.max_len)
            state[rows] = nxt
        done_at[rows[~going]] = t
        rows = rows[going]
        decoder.advance(going, ix)
        if len(rows) == 0:
            break
    # A row is the name's ids, then 0s ('.') from its end on: its text without the trailing dots.
    names = [row.rstrip(BOUNDARY) for row in decode_rows(out, model.vocab)]
    return _results(draws, names, total.tolist(), fit.tolist(), done_at.tolist(), stopped, None)


@dataclass(frozen=True)
class Messages:
    """The backward messages of a constraint under an exact kind's next-letter table.

    Q (V, V): Q[c, j] the probability of j after c at the request's knobs (row 0, the start,
    without the end token when there is no prefix: a name has at least one letter). For a name
    with t letters, last letter c, automaton state s, the probability that it goes on to fit is

        beta_t(c, s) = sum_j Q[c, j] G_t[s, j],
        G_t[s, 0] = [s accepting and t >= min_len],  G_t[s, j] = beta_{t+1}(j, delta(s, j)),

    with G_{max_len}[s, j] = 0 for letters (no name is longer) and 0 for the dead state. `G[t]`
    holds G_t (S, V) for t from the prefix's length to max_len; `mass` = beta at the start."""

    Q: torch.Tensor
    G: dict[int, torch.Tensor]
    mass: float
    tables: dict[int, torch.Tensor] = field(default_factory=dict)

    TABLE = 1 << 21  # at most this many numbers in the cumulative tables (16 MB)

    def cumulative(self, t: int, prev: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """(L, V): each row's cumulative weights Q[prev, j] G_t[state, j] over j. For a small
        automaton every (letter, state) row of every step is computed once, in `tables`, and a
        step only looks its rows up; a large one computes the rows it needs."""
        S, V = self.G[t].shape
        if len(self.G) * V * S * V > self.TABLE:
            return (self.Q[prev] * self.G[t][state]).cumsum(dim=1)
        table = self.tables.get(t)
        if table is None:
            table = self.tables[t] = (self.Q[:, None, :] * self.G[t][None, :, :]).cumsum(
                dim=2).reshape(V * S, V)
        return table[prev * S + state]

    @staticmethod
    def of(Q: torch.Tensor, c: Constraint) -> Messages:
        delta, accepting = c.automaton.delta, c.automaton.accepting.double()
        S, V = delta.shape
        t0 = len(c.prefix)
        G: dict[int, torch.Tensor] = {}
        beta = torch.zeros(V, S, dtype=torch.float64)  # beta_{t+1}, unused at max_len
        for t in range(c.max_len, t0 - 1, -1):
            g = torch.zeros(S, V, dtype=torch.float64)
            if t >= c.min_len:
                g[:, 0] = accepting
            if t < c.max_len:
                # g[s, j] = beta_{t+1}[j, delta[s, j]], 0 where delta is dead
                cols = torch.arange(V).expand(S, V)
                g[:, 1:] = torch.where(delta[:, 1:] >= 0,
                                       beta[cols[:, 1:], delta[:, 1:].clamp_min(0)], 0.0)
            G[t] = g
            beta = Q @ g.T  # (V, S): beta_t
        last = c.vocab.encode(c.prefix)[-1] if c.prefix else 0
        s0 = c.start_state
        mass = float(beta[last, s0]) if s0 >= 0 else 0.0
        return Messages(Q, G, mass)


def exact_table(model: LanguageModel, raw: torch.Tensor, knobs: Knobs,
                prefix: str) -> torch.Tensor:
    """Q (V, V) of `Messages` from the next-letter logits of every letter, `raw` (V, V)."""
    logits = raw.double()
    if not prefix:
        logits = logits.clone()
        logits[0, 0] = -torch.inf  # a name has at least one letter
    return next_letter_probs(logits, knobs)[0]


@torch.no_grad()
def exact_sampler(model: LanguageModel, draws: list[Draw], knobs: Knobs,
                  c: Constraint) -> Steps[list[Drawn]]:
    """Exact draws from P(name | fits) for a kind whose next letter depends only on the
    previous one: the messages (`Messages`), then forward, each step's choice j drawn with
    probability Q[c, j] G_t[s, j] / beta_t(c, s). Every draw fits; `mass` is exact."""
    V = len(model.vocab)
    raw = yield model.decoder(torch.arange(V)[:, None])  # (V, V): after each letter ('.' first)
    msgs = Messages.of(exact_table(model, raw, knobs, c.prefix), c)
    logp = torch.log_softmax(raw.double(), dim=1)  # at temperature 1, as scoring does
    N = sum(d.n for d in draws)
    last = c.max_len + 1
    prefix_ids = model.vocab.encode(c.prefix)
    out = torch.zeros(N, c.max_len, dtype=torch.long)
    if prefix_ids:
        out[:, : len(prefix_ids)] = torch.tensor(prefix_ids)
    total = torch.full((N,), prefix_log_prob(model, c.prefix), dtype=torch.float64)
    done_at = torch.full((N,), last, dtype=torch.long)
    stopped = [last] * len(draws)
    if msgs.mass <= 0:  # no name that fits survives the knobs (top-k, top-p, min-p)
        return [Drawn([], [], drawn=0, fits=0, mass=0.0) for _ in draws]
    delta = c.automaton.delta
    prev = torch.full((N,), prefix_ids[-1] if prefix_ids else 0, dtype=torch.long)
    state = torch.full((N,), c.start_state, dtype=torch.long)
    rows = torch.arange(N)
    for t in range(len(prefix_ids), last):
        if _stop_checks(draws, stopped, t, last):
            break
        u = _uniforms(draws, rows)
        cum = msgs.cumulative(t, prev, state)  # (L, V)
        ix = (cum <= u[:, None].double() * cum[:, -1:]).sum(dim=1).clamp_max(V - 1)
        total.index_add_(0, rows, logp[prev, ix])
        ended = ix == 0
        if t < c.max_len:
            out[rows, t] = ix
        done_at[rows[ended]] = t
        going = ~ended
        state = delta[state[going], ix[going]]
        prev = ix[going]
        rows = rows[going]
        if len(rows) == 0:
            break
    names = [row.rstrip(BOUNDARY) for row in decode_rows(out, model.vocab)]
    return _results(draws, names, total.tolist(), [True] * N, done_at.tolist(), stopped,
                    msgs.mass)
