"""Dynamic batching on the model thread, in chunks: concurrent requests for the same model and
the same operation are served together, one forward pass per step for all of them, and no
request holds the model thread for more than a chunk at a time.

A route awaits `score(m, names)` or `sample(m, p)` on the event loop. Its cost is
checked first (app/domain/cost.py: over the request budget is a 422 naming it). The request joins
the queue of its model and operation, and a job for it joins the model thread's queue under its
client (app/serving/worker.py: round-robin over clients, a chunk a turn). When the job's turn comes
it serves a chunk: its own request's next piece, and, for a model whose rows are independent of
the batch, pieces of the other requests queued for the model (one from each client in turn)
while the chunk's budget and MAX_ROWS allow. A request never waits for a batch to fill: a batch
is what queued up while the model thread was busy, and a request alone is a batch of one.

- Scoring: a request's names are cut, in order, into pieces of at most one chunk of cost
  (NAMELAB_CHUNK_FLOPS), where the cut depends on the names alone; a chunk scores pieces.
- Sampling: a batch of requests is driven together step by step (app/lm/sampling.py,
  `drive_steps`), and the job goes back to the queue whenever the steps run since its last turn
  cost a chunk (a step is never cut: a chunk is at least one step). Others' requests join a
  batch only while one step of it (its rows, p.n a request, a letter each) costs at most a
  chunk, so a light request is not held for every step of a heavy one: it gets its own turn
  after one of the heavy one's chunks. Each request of a batch is answered as soon as its own
  run ends (a group of requests with the same options is one run), not when the batch ends.
  (A request that draws in rounds, filtered, may run up to services.MAX_ROUND rows a step in
  its later rounds: only its first round is counted.)

Each request gets exactly what it would get alone, to the last bit, chunked or not:
- sampling: each request keeps its own torch.Generator and draws only for its own rows; the
  batch shares only the forward pass (app/lm/sampling.py, `drive`); pausing between steps
  changes nothing;
- scoring: a name's steps depend only on its own rows of the forward pass;
- and a row's logits do not depend on the other rows of the pass. That holds for table lookups
  and is checked at load for the fast forms of the MLP, the WaveNet and the Transformer (each
  pads its rows and keeps its weights transposed: app/lm/base.py, ROW_MULTIPLE); a model for
  which it does not hold (`rows_independent` false) is served one request at a time, still
  queued here, and its names cut where the cost alone says.
- sampling is batched for models whose decoder's rows are independent of the batch
  (`LanguageModel.groups_sampling`, `services.shares_sampling`): the base window decoder's,
  and the Transformer's KV-cached decoder, checked at load (app/lm/transformer.py).
tests/test_batching.py sends the same requests alone, interleaved, and in small chunks, and
compares the bytes.

The model-time deadline (app/serving/worker.py, app/lm/deadline.py: a safety net, counts bound the
work) bounds each sampling request of a batch: each gets its own, started when the model thread
picks the batch up, counting only the batch's own chunks; it checks it before each of its steps and
stops with the names of its whole rounds of draws (`exhausted: true`, `timed_out: true`). A
request whose client has left is taken out of the queue, its job out of the model thread's;
one in a sampling batch stops at its next step. A job whose request's pieces were all taken
into others' chunks leaves the model thread's queue then: what is queued is what is admitted.
An error in serving a chunk is the answer of each request of it; a bug outside the serving
(taking pieces, joining a result) is logged and answers every request of the chunk with it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from app.domain import cost, services
from app.domain.params import InvalidParam, SampleParams
from app.domain.services import NameScore, SampleResult
from app.lm.base import LanguageModel
from app.lm.flops import letter_flops, step_flops
from app.serving import worker
from app.store.registry import LoadedModel

log = logging.getLogger("namelab.batching")
T = TypeVar("T")
R = TypeVar("R")

MAX_ROWS = 2048  # names scored or drawn per batch (a request of MAX_SCORE names always fits)
# a batch's serving: yields None between chunks, or (k, result) once item k is done (the
# others may run on), and returns every item's result
Served = Generator[tuple[int, Any] | None, None, list[Any]]
Serve = Callable[[LoadedModel, list[T], list[Callable[[], bool]]], Served]


@dataclass(eq=False)
class Waiting(Generic[T]):
    """A request in a Batcher's queue: its pieces not yet taken into a chunk, in order."""

    pieces: deque[T]
    sizes: deque[tuple[int, int]]  # each piece's (rows, FLOPs)
    client: str
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    results: list[Any] = field(default_factory=list)
    left: int = 0  # pieces not yet served
    cancelled: bool = False
    started: bool = False
    since: int = 0  # the model thread's chunks when it joined the queue
    light: bool = True  # one chunk of work at most
    job: worker.Job | None = None  # the model thread's job that takes its pieces


class Batcher(Generic[T, R]):
    """One operation, batched per model and served in chunks. `serve(model, items, gone)` is a
    job (app/serving/worker.py: yields between chunks) returning each item's result or exception, in
    order; `split(model, item)` cuts a request into pieces with their (rows, FLOPs); `join`
    makes the request's result of its pieces'. Thread-safe: requests arrive on event loops,
    jobs run on the model thread."""

    def __init__(self, serve: Serve, split: Callable[[LanguageModel, T],
                                                        list[tuple[T, int, int]]],
                 join: Callable[[list[Any]], R], batches: Callable[[LanguageModel], bool],
                 max_rows: int = MAX_ROWS, chunked_batch: bool = True) -> None:
        self.serve, self.split, self.join, self.max_rows = serve, split, join, max_rows
        # whether a batch is at most a chunk of FLOPs (scoring), or cut into chunks as it is
        # served (sampling: its steps)
        self.chunked_batch = chunked_batch
        self.batches = batches  # whether requests for this model may share a batch
        # by id(model) (the entries hold it), then by client: the round a chunk is filled in
        self.queues: dict[int, OrderedDict[str, deque[Waiting[T]]]] = {}
        self.lock = threading.Lock()

    async def submit(self, m: LoadedModel, item: T) -> R:
        loop = asyncio.get_running_loop()
        parts = self.split(m.model, item)
        thread = worker.executor()
        chunk = cost.limits.chunk_flops if cost.limits is not None else None
        w = Waiting(deque(p for p, _, _ in parts), deque((r, f) for _, r, f in parts),
                    worker.client(), loop.create_future(), loop, left=len(parts),
                    since=thread.chunks,
                    light=len(parts) == 1 and (chunk is None or parts[0][2] <= chunk))
        thread.admit()  # QueueFull: 503
        try:
            with self.lock:
                queue = self.queues.setdefault(id(m), OrderedDict())
                queue.setdefault(w.client, deque()).append(w)
            job = w.job = worker.Job(self._job(m, w), w.client, lambda result: None)
            thread.put(job)
            return await worker.until_gone(w.future, lambda: self._cancel(m, w, job))
        finally:
            thread.release(worker.outcome(w.cancelled, w.started))

    def queued(self) -> int:
        """Requests with pieces waiting to be taken into a chunk."""
        with self.lock:
            return sum(len(q) for queue in self.queues.values() for q in queue.values())

    def _cancel(self, m: LoadedModel, w: Waiting[T], job: worker.Job) -> None:
        """w's pieces are never taken; its job leaves the model thread's queue unless it
        started (then it may be serving others' pieces: it ends at its next turn)."""
        with self.lock:
            w.cancelled = True
            job.unwanted = True
            self._remove(m, w)
            if not job.started:
                worker.executor().discard(job)

    def _remove(self, m: LoadedModel, w: Waiting[T]) -> None:
        queue = self.queues.get(id(m), {})
        mine = queue.get(w.client)
        if mine is not None and w in mine:
            mine.remove(w)
            if not mine:
                del queue[w.client]
        if not queue:
            self.queues.pop(id(m), None)

    def _job(self, m: LoadedModel, w: Waiting[T]) -> Iterator[None]:
        """On the model thread: a chunk at a time until w's pieces are all taken (by this job
        or by the others of its model, which fill their chunks with them). An error of the
        serving (`serve`) reaches the requests of its batch as their result; any other (a
        bug in taking, joining or counting) is logged and reaches w and every request of the
        batch, which leave the queue: no request waits for an answer that cannot come."""
        batch: list[tuple[Waiting[T], T]] = []
        try:
            while True:
                batch = []
                with self.lock:
                    self._take(m, w, batch)
                if not batch:
                    return
                early: set[int] = set()  # pieces whose results came before the batch ended
                try:
                    steps = self.serve(m, [piece for _, piece in batch],
                                       [lambda x=x: x.cancelled for x, _ in batch])
                    while True:
                        try:
                            out = next(steps)
                        except StopIteration as stop:
                            results = stop.value
                            break
                        if out is None:
                            yield  # a chunk done: the others' turn
                        else:  # (k, result): piece k is done, the others run on
                            early.add(out[0])
                            worker.settle_all(self._answer(batch[out[0]][0], out[1]))
                except Exception as e:  # a bug: every request of the batch fails with it
                    results = [e] * len(batch)
                worker.settle_all([s for k, ((x, _), result)  # one wake-up of the loop
                                   in enumerate(zip(batch, results, strict=True))
                                   if k not in early for s in self._answer(x, result)])
                if not w.pieces:
                    return
                yield  # a chunk done: the others' turn
        except Exception as e:
            log.exception("batching: a chunk of %s failed outside its serving", m.name)
            with self.lock:
                for x in {w, *(x for x, _ in batch)}:  # settled once: the first result stays
                    self._remove(m, x)
                    worker.settle_on(x.loop, x.future, e)

    def _answer(self, x: Waiting[T], result: Any) -> list[worker.Settlement]:
        """One of x's pieces is done: x's answer once all are (to settle), else nothing."""
        x.results.append(result)
        x.left -= 1
        if x.left != 0:
            return []
        errors = [r for r in x.results if isinstance(r, Exception)]
        done = errors[0] if errors else self.join(x.results)
        # counted before it is answered: whoever reads the count then sees it
        worker.executor().waited("light" if x.light else "heavy", x.since)
        return [(x.loop, x.future, done)]

    def _take(self, m: LoadedModel, w: Waiting[T],
              batch: list[tuple[Waiting[T], T]]) -> None:
        """A chunk's pieces, into `batch` (so that what was taken is known if it fails): w's
        next one, then, where the model batches, one piece from each client's oldest request
        in turn while they fit (rows, and FLOPs when budgeted)."""
        if w.cancelled or not w.pieces:
            return
        chunk = cost.limits.chunk_flops if cost.limits and self.chunked_batch else None
        # a batch cut into chunks as it runs (sampling) takes others only while one step of
        # it (its rows, a letter each: app/lm/flops.py) fits in a chunk: a light request is
        # never held for a heavy one's every step, it gets its own turn after one of the heavy
        # one's chunks
        step = cost.limits.chunk_flops if cost.limits and not self.chunked_batch else None
        letter = letter_flops(m.model) if step is not None else 0
        rows, flops = 0, 0

        def take(x: Waiting[T]) -> None:
            nonlocal rows, flops
            r, f = x.sizes.popleft()
            batch.append((x, x.pieces.popleft()))
            rows, flops = rows + r, flops + f
            x.started = True
            if not x.pieces:
                self._remove(m, x)
                if x is not w and x.job is not None:  # nothing left for x's own job to take
                    worker.executor().discard(x.job)

        def fits(x: Waiting[T]) -> bool:
            r, f = x.sizes[0]
            return rows + r <= self.max_rows and (chunk is None or flops + f <= chunk) \
                and (step is None or (rows + r) * letter <= step)

        take(w)
        queue = self.queues.get(id(m))
        while queue and self.batches(m.model):
            took = False
            for mine in list(queue.values()):
                x = next((x for x in mine if x.pieces and fits(x)), None)
                if x is not None:
                    take(x)
                    took = True
            if not took:
                break


def batches_scoring(model: LanguageModel) -> bool:
    return model.rows_independent


def score_pieces(model: LanguageModel, names: list[str]) -> list[tuple[list[str], int, int]]:
    """The names cut, in order, into pieces of at most a chunk of cost each (whole, unbudgeted)."""
    costs = [cost.score_flops(model, [x]) for x in names]
    if cost.limits is None:
        return [(names, len(names), sum(costs))]
    pieces, start = [], 0
    for end in cost.chunks(costs, cost.limits.chunk_flops):
        pieces.append((names[start:end], end - start, sum(costs[start:end])))
        start = end
    return pieces


def serve_scores(m: LoadedModel, pieces: list[list[str]],
                 gone: list[Callable[[], bool]]) -> worker.Chunks[list[Any]]:
    return services.score_many(m, pieces)
    yield  # one chunk


def joined(results: list[list[NameScore]]) -> list[NameScore]:
    return [s for part in results for s in part]


scoring: Batcher[list[str], list[NameScore]] = Batcher(serve_scores, score_pieces, joined,
                                                       batches=batches_scoring)


def sample_each(m: LoadedModel, requests: list[SampleParams],
                gone: list[Callable[[], bool]]) -> Served:
    """services.sample_many with a deadline of its own for each request, all started now (when
    the model thread picks the batch up), as each would get alone; each request's result is
    handed over as soon as its run ends; the model thread goes back to its queue whenever the
    steps run cost a chunk (the k-th step's rows counted at the cost of a step after k letters
    and the longest prefix: app/lm/flops.py, `step_flops`)."""
    deadlines = [worker.Unless(worker.request_deadline(), g) for g in gone]
    ready: list[tuple[int, Any]] = []
    steps = services.sample_many_steps(m, requests, deadlines,
                                       lambda i, result: ready.append((i, result)))
    t = max(len(p.prefix) for p in requests)  # at least, the letters before the step
    spent = 0
    while True:
        try:
            rows = next(steps)
        except StopIteration as done:
            return done.value
        yield from ready  # each request answered as soon as its own run ends
        ready.clear()
        spent += rows * step_flops(m.model, t)
        t += 1
        if cost.limits is not None and spent >= cost.limits.chunk_flops:
            spent = 0
            yield


def one_request(model: LanguageModel, p: SampleParams) -> list[tuple[SampleParams, int, int]]:
    return [(p, p.n, p.n * cost.draw_flops(model, p.prefix, p.max_len))]


sampling: Batcher[SampleParams, SampleResult] = Batcher(sample_each, one_request,
                                                        lambda results: results[0],
                                                        batches=services.shares_sampling,
                                                        chunked_batch=False)


def batched(registry) -> dict[str, dict[str, bool]]:
    """Per model: whether its score and sample requests are served together (logged at
    start-up, shown by /readyz)."""
    return {m.name: {"scoring": batches_scoring(m.model),
                     "sampling": services.shares_sampling(m.model)}
            for m in registry.models.values()}


def checked_cost(m: LoadedModel, names: list[str]) -> None:
    """InvalidParam (422) if scoring `names` costs more than the request budget."""
    letters = sum(len(x) for x in names)
    cost.check(cost.score_flops(m.model, names), "names", f"{len(names)} names",
               f"scoring {len(names)} names ({letters} letters) with model {m.name!r}")


async def score(m: LoadedModel, names: list[str], field: str = "names",
                indexed: bool = True) -> list[NameScore]:
    """services.score(m, names, field, indexed), served together with the other requests
    queued for m. The names are checked here first, so an InvalidParam names the route's field;
    so is their cost."""
    services.normalized_all(m, names, field, indexed)
    checked_cost(m, names)
    return await scoring.submit(m, names)


async def score_valid(m: LoadedModel, names: list[str]) -> tuple[list[NameScore],
                                                                  list[InvalidParam]]:
    """The names that can be scored, scored (in order, batched as `score`), and an
    InvalidParam for each one that cannot (its index in `names`)."""
    good, bad = services.split_valid(m, names)
    checked_cost(m, good)
    return (await scoring.submit(m, good) if good else []), bad


async def sample(m: LoadedModel, p: SampleParams) -> SampleResult:
    """services.sample_names(m, p), served together with the others queued for m. The
    parameters are checked here first (their cost too), so a bad request never joins a batch:
    a pattern on a thread of the pool, since compiling it takes up to its bound of work
    (app/lm/constraints.py, MAX_WORK) and the event loop serves every route meanwhile; the
    rest here (~25 us: the hop to a thread would cost twice that)."""
    m = services.under_condition(m, p.decade, p.sex)  # a decade or sex: its own batches
    if p.pattern:
        await asyncio.to_thread(services.checked_sample, m, p)
    else:
        services.checked_sample(m, p)
    return await sampling.submit(m, p)
