"""What a request's model work costs, counted before it starts: the sum of its steps' costs.

A step (one next-letter distribution: one letter of a name scored or sampled, or its end) costs
what the model as served computes for it, in floating-point operations of its matrix products
(app/lm/flops.py): a window through the model for the window kinds; one position of a full
block for the Transformer's first block_size steps (its KV-cached decoder and whole-name
scoring read a name a position at a time), a window for each step past them. Counted once per
model as the registry loads it (app/store/registry.py, `Registry.add`: on the model thread in a
server, since it runs model code), and only read afterwards. An upper bound: scoring shares a
name's first contexts, sampling its distinct histories, and a position attends to at most the
block. Counted, not timed: the same request costs the same on any machine, so the same request
is refused, or served the same, everywhere.

Two limits, settings of the server (app/config.py; None here, as for the command line, which
has no budget):
    request_flops  a request's cost, at most: more is refused before it starts (422 naming the
                   budget, the setting and the request's cost)
    chunk_flops    the model thread's unit of work: a batch of names scored, or the steps of a
                   sampling batch, up to this cost (a sampling step is never split: a chunk is
                   at least one step); the thread goes back to its queue between chunks
                   (app/serving/worker.py), so a light request waits about one chunk per busy client
"""

from __future__ import annotations

from dataclasses import dataclass

from app.domain.params import InvalidParam
from app.lm.base import LanguageModel
from app.lm.flops import step_flops


@dataclass(frozen=True)
class Limits:
    """The settings' (app/config.py, with their defaults)."""

    request_flops: int
    chunk_flops: int


limits: Limits | None = None  # the server's (create_app sets it); None: no budget (the CLI)


def configure(new: Limits | None) -> None:
    global limits
    limits = new


def steps_flops(model: LanguageModel, first: int, end: int) -> int:
    """The steps after first, first + 1, ..., end - 1 letters of a name (at least one step)."""
    S = model.sequence_steps  # steps t < S cost a letter of the sequence, the later a window
    within = max(0, min(end, S) - first)
    past = max(0, end - max(first, S))
    if within + past == 0:
        past = 1  # an empty range (a prefix at max_len): one step, counted as the dearest
    return within * step_flops(model, 0) + past * step_flops(model, S)


def score_flops(model: LanguageModel, names: list[str]) -> int:
    """Scoring `names`: a step for each of a name's letters and its end (an upper bound on
    the normalised name: normalising never lengthens a name past what the bounds allow)."""
    return sum(steps_flops(model, 0, len(x) + 1) for x in names)


def draw_flops(model: LanguageModel, prefix: str, max_len: int) -> int:
    """One name drawn: a step for each letter after the prefix and the end, at most."""
    return steps_flops(model, len(prefix), max_len + 1)


def check(flops: int, field: str, value, what: str) -> None:
    """InvalidParam (422) on `field` when `flops` is over the request budget."""
    if limits is not None and flops > limits.request_flops:
        raise InvalidParam(field, f"{what} costs {flops:,} FLOPs of model work, more than the "
                                  f"per-request budget of {limits.request_flops:,} "
                                  f"(NAMELAB_REQUEST_FLOPS): ask for less", value,
                           type="too_costly", ctx={"budget": limits.request_flops,
                                                   "cost": flops})


def draws_within(model: LanguageModel, prefix: str, max_len: int, count: int) -> int:
    """`count` draws, or fewer: as many as the request budget pays for (at least one)."""
    if limits is None:
        return count
    return max(1, min(count, limits.request_flops // draw_flops(model, prefix, max_len)))


def chunks(costs: list[int], chunk: int) -> list[int]:
    """Where to cut a list of items of `costs` so each piece costs at most `chunk` (at least
    one item a piece): the ends of the pieces. Depends on the costs alone, never on the load."""
    ends, spent = [], 0
    for i, c in enumerate(costs):
        if spent and spent + c > chunk:
            ends.append(i)
            spent = 0
        spent += c
    return [*ends, len(costs)]
