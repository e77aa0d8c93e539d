"""Dynamic batching on the model thread: concurrent requests for the same model and the same
operation are served together, one forward pass per step for all of them.

A route awaits `score(m, names)` or `sample(m, **kwargs)` on the event loop. The request joins
the queue of its model and operation; if that queue had no drain pending, one is submitted to the
model thread (app/worker.py). When the model thread reaches it, the drain takes everything
queued by then, up to MAX_ROWS names (always at least one request), and serves it with one call
of `services.score_many` / `services.sample_many`; if requests are left, another drain is queued
behind the model thread's other work. A request never waits for a batch to fill: a batch is what
queued up while the model thread was busy, and a request alone is a batch of one.

Each request gets exactly what it would get alone, to the last bit:
- sampling: each request keeps its own torch.Generator and draws only for its own rows; the
  batch shares only the forward pass (app/lm/sampling.py, `drive`);
- scoring: a name's steps depend only on its own rows of the forward pass;
- and a row's logits do not depend on the other rows of the pass. That holds for table lookups
  and is checked at load for the fast forms of the MLP, the WaveNet and the Transformer (each
  pads its rows and keeps its weights transposed: app/lm/base.py, ROW_MULTIPLE); a model for
  which it does not hold (`rows_independent` false) is served one request at a time, still
  queued here.
- sampling is batched for models whose decoder's rows are independent of the batch
  (`LanguageModel.groups_sampling`, `services.shares_sampling`): the base window decoder's,
  and the Transformer's KV-cached decoder, checked at load (app/lm/transformer.py).
tests/test_batching.py sends the same requests alone and interleaved and compares the bytes.

The model-time deadline (app/worker.py, app/lm/deadline.py: a safety net, counts bound the work)
bounds each request of a batch: each sampling request gets its own, started when the model
thread picks the batch up (as it would alone), checks it before each of its steps and stops with
the names of its whole rounds of draws (`exhausted: true`, `timed_out: true`); scoring is
bounded by the size of its input.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from app import services, worker
from app.lm.base import LanguageModel
from app.params import InvalidParam, SampleParams
from app.registry import LoadedModel
from app.services import NameScore, SampleResult

T = TypeVar("T")
R = TypeVar("R")

MAX_ROWS = 2048  # names scored or drawn per batch (a request of MAX_SCORE names always fits)


@dataclass(frozen=True)
class Waiting(Generic[T]):
    item: T
    rows: int
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop


class Batcher(Generic[T, R]):
    """One operation (`serve(model, items) -> results or exceptions, in order`), batched per
    model. Thread-safe: requests arrive on event loops, drains run on the model thread."""

    def __init__(self, serve: Callable[[LoadedModel, list[T]], list[R | Exception]],
                 rows: Callable[[T], int], batches: Callable[[LanguageModel], bool],
                 max_rows: int = MAX_ROWS) -> None:
        self.serve, self.rows, self.max_rows = serve, rows, max_rows
        self.batches = batches  # whether requests for this model may share a batch
        self.queues: dict[int, deque[Waiting[T]]] = {}  # by id(model): the entries hold it
        self.lock = threading.Lock()
        self.batch_sizes: list[int] = []  # requests per batch served, for tests and benchmarks

    async def submit(self, m: LoadedModel, item: T) -> R:
        loop = asyncio.get_running_loop()
        waiting = Waiting(item, self.rows(item), loop.create_future(), loop)
        with self.lock:
            queue = self.queues.get(id(m))
            idle = queue is None
            if idle:
                queue = self.queues[id(m)] = deque()
            queue.append(waiting)
        if idle:
            worker.executor().submit(self._drain, m)
        result = await waiting.future
        if isinstance(result, Exception):
            raise result
        return result

    def _drain(self, m: LoadedModel) -> None:
        """On the model thread: serve what is queued for m, up to max_rows."""
        with self.lock:
            queue = self.queues[id(m)]
            batch = [queue.popleft()]
            rows = batch[0].rows
            if self.batches(m.model):
                while queue and rows + queue[0].rows <= self.max_rows:
                    batch.append(queue.popleft())
                    rows += batch[-1].rows
            if queue:
                worker.executor().submit(self._drain, m)
            else:
                del self.queues[id(m)]
        self.batch_sizes.append(len(batch))
        del self.batch_sizes[:-1000]
        try:
            results: list[Any] = self.serve(m, [w.item for w in batch])
        except Exception as e:  # a bug: every request of the batch fails with it
            results = [e] * len(batch)
        for w, result in zip(batch, results, strict=True):
            w.loop.call_soon_threadsafe(_settle, w.future, result)


def _settle(future: asyncio.Future, result: Any) -> None:
    if not future.done():  # a request whose client went away was cancelled
        future.set_result(result)


def batches_scoring(model: LanguageModel) -> bool:
    return model.rows_independent


scoring: Batcher[list[str], list[NameScore]] = Batcher(services.score_many, rows=len,
                                                       batches=batches_scoring)
def sample_each(m: LoadedModel, requests: list[SampleParams]) -> list[SampleResult | Exception]:
    """services.sample_many with a deadline of its own for each request, all started now (when
    the model thread picks the batch up), as each would get alone."""
    return services.sample_many(m, requests, [worker.request_deadline() for _ in requests])


sampling: Batcher[SampleParams, SampleResult] = Batcher(sample_each,
                                                        rows=lambda p: p.n,
                                                        batches=services.shares_sampling)


def batched(registry) -> dict[str, dict[str, bool]]:
    """Per model: whether its score and sample requests are served together (logged at
    start-up, shown by /readyz)."""
    return {m.name: {"scoring": batches_scoring(m.model),
                     "sampling": services.shares_sampling(m.model)}
            for m in registry.models.values()}


async def score(m: LoadedModel, names: list[str], field: str = "names",
                indexed: bool = True) -> list[NameScore]:
    """services.score(m, names, field, indexed), served together with the other requests
    queued for m. The names are checked here first, so an InvalidParam names the route's field."""
    services.normalized_all(m, names, field, indexed)
    return await scoring.submit(m, names)


async def score_valid(m: LoadedModel, names: list[str]) -> tuple[list[NameScore],
                                                                  list[InvalidParam]]:
    """The names that can be scored, scored (in order, batched as `score`), and an
    InvalidParam for each one that cannot (its index in `names`)."""
    good, bad = services.split_valid(m, names)
    return (await scoring.submit(m, good) if good else []), bad


async def sample(m: LoadedModel, p: SampleParams) -> SampleResult:
    """services.sample_names(m, p), served together with the others queued for m. The
    parameters are checked here first, so a bad request never joins a batch: on a thread of
    the pool, since compiling a pattern takes up to its bound of work (app/lm/constraints.py,
    MAX_WORK) and the event loop serves every route meanwhile."""
    await asyncio.to_thread(services.checked_sample, m, p)
    return await sampling.submit(m, p)
