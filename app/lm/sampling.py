"""Batched sampling for any model: all n names advance one character per forward pass.

A sampling run is written as a generator (`sampler`): it yields its decoder (the model's view of
the names still growing: `LanguageModel.decoder`) and is sent their logits back. `drive` runs one
or several of them; runs on the base window `Decoder` share one forward pass per step: the
several requests that app/batching.py serves together. Requests with the same options can also
be one run (`group_sampler`), which shares each step's arithmetic too. Each request keeps its
own torch.Generator and draws only for its own rows, so its names do not depend on the others.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

from app.lm.base import Decoder, LanguageModel, decode_rows, distinct_logits
from app.lm.deadline import Deadline, passed
from app.lm.scoring import prefix_log_prob
from app.lm.vocab import BOUNDARY, MAX_NAME_LEN

R = TypeVar("R")
Steps = Generator[Decoder, torch.Tensor, R]  # yields its decoder, is sent its logits (L, V)


def sample(
    model: LanguageModel,
    n: int,
    generator: torch.Generator,
    temperature: float = 1.0,
    top_k: int | None = None,
    prefix: str = "",
    max_len: int = 32,
    deadline: Deadline | None = None,
) -> list[str]:
    """Draw n names. Every name starts with `prefix` (already normalised and in the vocab),
    has at least one letter and at most `max_len` letters (a name that reaches max_len is cut
    there). Deterministic for a given generator state; never touches the global RNG.
    If `deadline` passes first, only the names finished by then are returned (fewer than n)."""
    return sample_scored(model, n, generator, temperature=temperature, top_k=top_k,
                         prefix=prefix, max_len=max_len, deadline=deadline)[0]


def sample_scored(
    model: LanguageModel, n: int, generator: torch.Generator, **options: Any
) -> tuple[list[str], list[float]]:
    """`sample`, and each name's log-probability under the model at temperature 1, end token
    included (what scoring.log_probs gives, up to float32 rounding), collected on the way.
    `options` are `sample`'s: temperature, top_k, prefix, max_len, deadline."""
    (result,) = drive(model, [sampler(model, n, generator, **options)])
    if isinstance(result, Exception):
        raise result
    return result


@torch.no_grad()
def drive(model: LanguageModel, runs: list[Steps[R]]) -> list[R | Exception]:
    """Run sampling generators together: each step, every run still going yields its decoder
    and is sent the logits of its own rows. Runs whose decoders are the base window `Decoder`
    share one forward pass (each distinct window once) if the model's rows are independent of
    the batch (`rows_independent`); otherwise (the WaveNet), and for a kind's own decoder (the
    Transformer's KVDecoder keeps state per history), each run gets its logits alone.
    Returns each run's result, or the exception it raised (which ends only that run)."""
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

    for i, run in enumerate(runs):
        advance(i, run, None)
    while live:
        step, live = live, []
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
    return results


def sampler(
    model: LanguageModel,
    n: int,
    generator: torch.Generator,
    temperature: float = 1.0,
    top_k: int | None = None,
    prefix: str = "",
    max_len: int = 32,
    deadline: Deadline | None = None,
) -> Steps[tuple[list[str], list[float]]]:
    """`sample_scored` as steps for `drive`: yields the decoder of the growing names, is sent
    their logits. Checks `deadline` before each step: once passed, the names finished so far."""
    (result,) = yield from group_sampler(model, [Draw(n, generator, deadline)],
                                         temperature=temperature, top_k=top_k, prefix=prefix,
                                         max_len=max_len)
    return result


def filtered(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
             first: bool = False) -> torch.Tensor:
    """(L, V) logits -> the (L, V) logits sampling draws from, row by row: divided by the
    temperature, and -inf for every symbol cut: the end of the name at the `first` step (a name
    has at least one letter), then what the knobs cut (top-k: all but the k largest; ties with
    the k-th are kept). The one place this is decided: the sampler and the next-letter view
    (app/lm/inspect.py) both call it. Each row's best logit is shifted to 0 first, and the
    division is by at least 1e-30 (a float32, unlike 1e-300): a tiny temperature then gives 0
    and -inf (greedy), never nan."""
    if first:
        logits = logits.clone()
        logits[:, 0] = -torch.inf
    logits = logits - logits.max(dim=1, keepdim=True).values
    if temperature != 1:
        logits = logits / max(temperature, 1e-30)
    if top_k is not None and top_k < logits.shape[1]:
        kth = torch.topk(logits, top_k, dim=1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, -torch.inf)
    return logits


@dataclass(frozen=True)
class Draw:
    """One request's share of a `group_sampler`: its names, its generator, its deadline."""

    n: int
    generator: torch.Generator
    deadline: Deadline | None = None


@torch.no_grad()
def group_sampler(
    model: LanguageModel,
    draws: list[Draw],
    temperature: float = 1.0,
    top_k: int | None = None,
    prefix: str = "",
    max_len: int = 32,
) -> Steps[list[tuple[list[str], list[float]]]]:
    """`sampler` for several requests with the same options at once: their names are the rows
    of one decoder and go through each step's arithmetic together, so a step costs a few tensor
    operations for the whole group instead of a few dozen per request. Each draw keeps its own
    generator (one uniform per name of its own per step, as alone) and its own deadline; every
    other operation is row by row (elementwise, or along a row: the max, the cumulative sum,
    log_softmax), so each draw's names and log-probabilities are, to the bit, what `sampler`
    gives it alone (tests/test_batching.py compares the bytes)."""
    if any(d.n < 1 for d in draws):
        raise ValueError(f"n must be >= 1, got {min(d.n for d in draws)}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    V = len(model.vocab)
    if top_k is not None and not 1 <= top_k <= V:
        raise ValueError(f"top_k must be between 1 and {V}, got {top_k}")
    if not 1 <= max_len <= MAX_NAME_LEN:
        raise ValueError(f"max_len must be between 1 and {MAX_NAME_LEN}, got {max_len}")
    if len(prefix) > max_len:
        raise ValueError(f"prefix {prefix!r} is longer than max_len={max_len}")

    if model.training:  # eval() walks every submodule: ~0.2 ms a call on the MLP
        model.eval()
    B = model.block_size
    N = sum(d.n for d in draws)
    prefix_ids = model.vocab.encode(prefix)
    start = ([0] * B + prefix_ids)[-B:]
    out = torch.zeros(N, max_len, dtype=torch.long)  # sampled letter ids, 0 after the end
    if prefix_ids:
        out[:, : len(prefix_ids)] = torch.tensor(prefix_ids)
    total = torch.full((N,), prefix_log_prob(model, prefix), dtype=torch.float64)
    # The step at which each draw's deadline stopped it (max_len + 1: it did not). A name that
    # ended at step t has t letters, so a draw stopped at step s keeps its names shorter than s.
    stopped = [max_len + 1] * len(draws)
    # The names still growing: which they are, and their contexts. Finished ones are dropped.
    rows = torch.arange(N)  # (L,)
    decoder = model.decoder(torch.tensor([start], dtype=torch.long).repeat(N, 1))  # (L, B)
    for t in range(len(prefix_ids), max_len):
        # Checked between forward passes: a draw whose deadline passed stops with the names it
        # has finished; the others go on (the group stops when every draw has stopped).
        for k, d in enumerate(draws):
            if stopped[k] > max_len and passed(d.deadline):
                stopped[k] = t
        if all(s <= max_len for s in stopped):
            break
        # One uniform per name per step, finished or not: the names for a seed do not depend
        # on which names finished when.
        u = (torch.rand(draws[0].n, generator=draws[0].generator) if len(draws) == 1 else
             torch.cat([torch.rand(d.n, generator=d.generator) for d in draws]))[rows]  # (L,)
        raw = yield decoder  # (L, V): the decoder's logits (batched with other runs by drive)
        logits = filtered(raw.float(), temperature, top_k, first=t == 0)
        # Inverse CDF: P(ix = j) = w_j / sum(w), with w = exp(logits) (the softmax, unnormalised).
        # u * total < total, so ix < V; a j with w_j = 0 can never be drawn.
        cum = logits.exp().cumsum(dim=1)  # (L, V)
        ix = (cum <= u[:, None] * cum[:, -1:]).sum(dim=1)  # (L,)
        logp = torch.log_softmax(raw.double(), dim=1)  # at temperature 1, as scoring does
        total.index_add_(0, rows, logp.gather(1, ix[:, None]).squeeze(1))
        out[rows, t] = ix
        going = ix != 0
        rows = rows[going]
        decoder.advance(going, ix)
        if len(rows) == 0:
            break
    else:
        if len(rows):  # names cut at max_len: their end token was not drawn
            total[rows] += torch.log_softmax((yield decoder).double(), dim=1)[:, 0]
    # A row is the name's ids, then 0s ('.') from its end on: its text without the trailing dots.
    names = [row.rstrip(BOUNDARY) for row in decode_rows(out, model.vocab)]
    totals = total.tolist()
    results, first = [], 0
    for d, stop in zip(draws, stopped, strict=True):
        mine = [r for r in range(first, first + d.n) if len(names[r]) < stop]
        results.append(([names[r] for r in mine], [totals[r] for r in mine]))
        first += d.n
    return results
