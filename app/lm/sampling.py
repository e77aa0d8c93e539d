"""Batched sampling for any model: all n names advance one character per forward pass.

A sampling run is written as a generator (`sampler`): it yields the contexts it needs logits
for and is sent those logits back. `drive` runs one or several of them with one forward pass per
step for all: the several requests that app/batching.py serves together. Each run keeps its own
torch.Generator and draws only for its own rows, so its names do not depend on the others.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, TypeVar

import torch

from app.lm.base import LanguageModel, decode_rows, distinct_logits
from app.lm.scoring import prefix_log_prob
from app.lm.vocab import BOUNDARY

MAX_LEN = 64

R = TypeVar("R")
Steps = Generator[torch.Tensor, torch.Tensor, R]  # yields contexts (L, B), is sent logits (L, V)


def sample(
    model: LanguageModel,
    n: int,
    generator: torch.Generator,
    temperature: float = 1.0,
    top_k: int | None = None,
    prefix: str = "",
    max_len: int = 32,
) -> list[str]:
    """Draw n names. Every name starts with `prefix` (already normalised and in the vocab),
    has at least one letter and at most `max_len` letters (a name that reaches max_len is cut
    there). Deterministic for a given generator state; never touches the global RNG."""
    return sample_scored(model, n, generator, temperature=temperature, top_k=top_k,
                         prefix=prefix, max_len=max_len)[0]


def sample_scored(
    model: LanguageModel, n: int, generator: torch.Generator, **options: Any
) -> tuple[list[str], list[float]]:
    """`sample`, and each name's log-probability under the model at temperature 1, end token
    included (what scoring.log_probs gives, up to float32 rounding), collected on the way.
    `options` are `sample`'s: temperature, top_k, prefix, max_len."""
    (result,) = drive(model, [sampler(model, n, generator, **options)])
    if isinstance(result, Exception):
        raise result
    return result


@torch.no_grad()
def drive(model: LanguageModel, runs: list[Steps[R]]) -> list[R | Exception]:
    """Run sampling generators together: each step, the contexts of every run still going in
    one forward pass (each distinct context once), each run sent the logits of its own rows.
    Returns each run's result, or the exception it raised (which ends only that run)."""
    results: list[Any] = [None] * len(runs)
    live: list[tuple[int, Steps[R], torch.Tensor]] = []

    def advance(i: int, run: Steps[R], logits: torch.Tensor | None) -> None:
        try:
            ctx = next(run) if logits is None else run.send(logits)
        except StopIteration as done:
            results[i] = done.value
        except Exception as e:  # the run's own error, returned to its caller
            results[i] = e
        else:
            live.append((i, run, ctx))

    for i, run in enumerate(runs):
        advance(i, run, None)
    while live:
        step, live = live, []
        ctx = step[0][2] if len(step) == 1 else torch.cat([c for _, _, c in step])
        logits = distinct_logits(model, ctx)  # (sum of L, V)
        start = 0
        for i, run, c in step:
            advance(i, run, logits[start : start + len(c)])
            start += len(c)
    return results


@torch.no_grad()
def sampler(
    model: LanguageModel,
    n: int,
    generator: torch.Generator,
    temperature: float = 1.0,
    top_k: int | None = None,
    prefix: str = "",
    max_len: int = 32,
) -> Steps[tuple[list[str], list[float]]]:
    """`sample_scored` as steps for `drive`: yields the contexts of the growing names."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    V = len(model.vocab)
    if top_k is not None and not 1 <= top_k <= V:
        raise ValueError(f"top_k must be between 1 and {V}, got {top_k}")
    if not 1 <= max_len <= MAX_LEN:
        raise ValueError(f"max_len must be between 1 and {MAX_LEN}, got {max_len}")
    if len(prefix) > max_len:
        raise ValueError(f"prefix {prefix!r} is longer than max_len={max_len}")

    if model.training:  # eval() walks every submodule: ~0.2 ms a call on the MLP
        model.eval()
    B = model.block_size
    prefix_ids = model.vocab.encode(prefix)
    start = ([0] * B + prefix_ids)[-B:]
    out = torch.zeros(n, max_len, dtype=torch.long)  # sampled letter ids, 0 after the end
    if prefix_ids:
        out[:, : len(prefix_ids)] = torch.tensor(prefix_ids)
    total = torch.full((n,), prefix_log_prob(model, prefix), dtype=torch.float64)
    # The names still growing: which they are, and their contexts. Finished ones are dropped.
    rows = torch.arange(n)  # (L,)
    ctx = torch.tensor([start], dtype=torch.long).repeat(n, 1)  # (L, B)
    for t in range(len(prefix_ids), max_len):
        # One uniform per name per step, finished or not: the names for a seed do not depend
        # on which names finished when.
        u = torch.rand(n, generator=generator)[rows]  # (L,)
        raw = yield ctx  # (L, V): the logits of these contexts (distinct_logits in drive)
        logits = raw.float()
        if t == 0:
            logits = logits.clone()
            logits[:, 0] = -torch.inf  # a name has at least one letter
        # Shift the best logit to 0 before dividing, and divide by at least 1e-30 (a float32,
        # unlike 1e-300): a tiny temperature then gives 0 and -inf (greedy), never nan.
        logits = logits - logits.max(dim=1, keepdim=True).values
        if temperature != 1:
            logits = logits / max(temperature, 1e-30)
        if top_k is not None and top_k < V:
            kth = torch.topk(logits, top_k, dim=1).values[:, -1:]
            logits = logits.masked_fill(logits < kth, -torch.inf)
        # Inverse CDF: P(ix = j) = w_j / sum(w), with w = exp(logits) (the softmax, unnormalised).
        # u * total < total, so ix < V; a j with w_j = 0 can never be drawn.
        cum = logits.exp().cumsum(dim=1)  # (L, V)
        ix = (cum <= u[:, None] * cum[:, -1:]).sum(dim=1)  # (L,)
        logp = torch.log_softmax(raw.double(), dim=1)  # at temperature 1, as scoring does
        total.index_add_(0, rows, logp.gather(1, ix[:, None]).squeeze(1))
        out[rows, t] = ix
        going = ix != 0
        rows, ctx = rows[going], torch.cat([ctx[going, 1:], ix[going, None]], dim=1)
        if len(rows) == 0:
            break
    if len(rows):  # names cut at max_len: their end token was not drawn
        total[rows] += torch.log_softmax((yield ctx).double(), dim=1)[:, 0]
    # A row is the name's ids, then 0s ('.') from its end on: its text without the trailing dots.
    names = [row.rstrip(BOUNDARY) for row in decode_rows(out, model.vocab)]
    return names, total.tolist()

