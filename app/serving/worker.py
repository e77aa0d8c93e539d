"""The one thread that runs model code in a server process, and its fair, bounded queue.

PyTorch on CPU splits an operation over OpenMP threads, and libgomp keeps a separate team of them
for every thread that starts such work. FastAPI runs sync routes on any of ~40 pool threads, so a
server soon has more OpenMP threads than cores; libgomp then stops spinning between operations
and every small tensor operation pays for putting a thread to sleep and waking it again. Measured
on the 2-core machine (`python bench/bench_threads.py`): once several threads have run torch
code, small operations are 2-6.5x slower and sampling 1000 names from the MLP 1.5-2x slower,
even back on one thread (BENCHMARKS.md, "One model thread").

So every route that touches a model runs on this one thread (`model_thread`), and so does the
loading at start-up (`run`). One team of OpenMP threads then serves all requests; they queue for
it, and each uses every core through torch's intra-op parallelism. The thread is per process,
like the OpenMP teams it protects; uvicorn workers are processes, each with its own.

Since requests queue for it, no request may hold it long, and a flood must not starve the rest:
- What bounds a request's work is a count, so that the same request gets the same answer on any
  machine and at any load: its cost in FLOPs (app/domain/cost.py: letters x the model's cost of a
  letter; more than NAMELAB_REQUEST_FLOPS is refused before it is queued), names drawn
  (app/domain/services.py), prefixes expanded by the search (app/lm/search.py).
- Work is a `Job`: a generator that does one chunk per turn (app/serving/batching.py cuts scoring
and
  sampling into chunks of NAMELAB_CHUNK_FLOPS; a route on the model thread is one chunk).
- Fair: round-robin over clients (by the client's address). Each turn runs one chunk of the
  first client's oldest job, and that client goes to the back of the round. Chosen over
  cheapest-first with aging because it needs no estimate of the rest of a job, cannot starve
  anyone (a client waits at most one chunk per other busy client), and a flood from one
  address costs the others one chunk a round however many requests it sends. (Behind a proxy
  every client has the proxy's address: run the proxy's own per-client limits there.)
- Bounded: at most NAMELAB_MAX_QUEUE requests in the model thread's hands at once (waiting or
  in progress); one more gets 503 with Retry-After, counted in /metrics
  (namelab_model_queue_total{outcome="rejected"}).
- A request whose client has gone (`WatchDisconnect` sees the disconnect) is taken out of the
  queue at once (so the queue holds only requests admitted), and work in progress stops at
  its next chunk (a sampling request at its next step: its deadline passes). A route on the
  model thread (`model_thread`: pages, /top, /compare) runs as one chunk; its deadline
  (`request_deadline`) passes once its client has gone, so its sampling or search stops at
  its next step, and its answer is dropped.

Each request also runs under a deadline of MODEL_SECONDS of its own model time (from when the
thread picks the request up, counting only the chunks run for it; `app.lm.deadline`), a safety
net only (docs/determinism.md). Sampling and search stop when it passes, answer with what they
found and say so (`timed_out: true`, a sentence on the pages).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future
from contextvars import ContextVar
from typing import Any, ParamSpec, TypeVar

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.lm.deadline import Deadline, bounded

P = ParamSpec("P")
R = TypeVar("R")
log = logging.getLogger("namelab.worker")

MODEL_SECONDS = 10.0  # model time per request, at most (about: checked between forward passes)
MAX_QUEUE = 256  # requests in the model thread's hands at once (NAMELAB_MAX_QUEUE)
RETRY_AFTER = 1  # seconds, in a 503's Retry-After
WAIT_BUCKETS = (0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, float("inf"))  # in chunks
Chunks = Generator[None, None, R]  # a job: yields between chunks, returns its result


class QueueFull(RuntimeError):
    """The model thread has max_queue requests already: 503, Retry-After."""

    def __init__(self, max_queue: int) -> None:
        super().__init__(f"the server is busy: {max_queue} requests are waiting for the models "
                         f"(NAMELAB_MAX_QUEUE); try again in {RETRY_AFTER} s")


class ClientGone(RuntimeError):
    """The client disconnected before its model work was done: the work was dropped."""


class Job:
    """One unit of model work for `client`: `steps` runs a chunk per `next()`; `done` is called
    once, on the model thread, with its result or exception (or ClientGone if cancelled)."""

    def __init__(self, steps: Iterator[None], client: str,
                 done: Callable[[Any], None]) -> None:
        self.steps, self.client, self.done = steps, client, done
        self.cancelled = False  # set from the event loop: its client left
        self.unwanted = False  # likewise, for a job that may serve others once started
        self.started = False
        self.seconds = 0.0  # model time spent on it so far
        self.running_since: float | None = None

    def clock(self) -> float:
        """Its model time: a request's deadline counts only the chunks run for it."""
        since = self.running_since
        return self.seconds + (time.monotonic() - since if since is not None else 0.0)


class ModelThread:
    """The process's model thread and its queue: round-robin over clients, a chunk a turn."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.clients: OrderedDict[str, deque[Job]] = OrderedDict()  # the round, in order
        self.max_queue = MAX_QUEUE
        self.admitted = 0  # requests in its hands (waiting or in progress)
        self.counts = {"served": 0, "rejected": 0, "dropped": 0, "stopped": 0}
        self.chunks = 0  # chunks run (a turn each)
        # chunks run from a request's joining the queue to its answer, by its size: "light"
        # (one chunk of work) or "heavy"; counted on this thread, so no time enters it
        self.waits: dict[str, list[int]] = {"light": [0] * len(WAIT_BUCKETS),
                                            "heavy": [0] * len(WAIT_BUCKETS)}
        self.wait_sums = {"light": 0, "heavy": 0}
        self.current: Job | None = None
        self.thread = threading.Thread(target=self._loop, name="namelab-model", daemon=True)
        self.thread.start()

    def admit(self) -> None:
        """Take a request into the queue (QueueFull beyond max_queue); `release` it once
        answered."""
        with self.cond:
            if self.admitted >= self.max_queue:
                self.counts["rejected"] += 1
                raise QueueFull(self.max_queue)
            self.admitted += 1

    def waited(self, size: str, since: int) -> None:
        """On this thread, as a request is answered: it joined the queue at chunk `since`."""
        chunks = self.chunks - since
        with self.cond:
            counts = self.waits[size]
            for i, le in enumerate(WAIT_BUCKETS):
                if chunks <= le:
                    counts[i] += 1
            self.wait_sums[size] += chunks

    def release(self, outcome: str) -> None:
        with self.cond:
            self.admitted -= 1
            self.counts[outcome] += 1

    def put(self, job: Job, first: bool = False) -> None:
        """Queue a job behind its client's others (`first`: ahead of them), its client at the
        end of the round if it had nothing queued."""
        with self.cond:
            jobs = self.clients.get(job.client)
            if jobs is None:
                jobs = self.clients[job.client] = deque()
            jobs.appendleft(job) if first else jobs.append(job)
            self.cond.notify()

    def cancel(self, job: Job) -> None:
        """From the event loop: job's client has left; it leaves the queue at once."""
        with self.cond:
            job.cancelled = True
            self.discard(job)

    def discard(self, job: Job) -> None:
        """Take a job out of its client's queue (if there), so that what is queued is only
        ever what is admitted, and a flood of requests that left leaves nothing behind."""
        with self.cond:
            jobs = self.clients.get(job.client)
            if jobs is not None and job in jobs:
                jobs.remove(job)
                if not jobs:
                    del self.clients[job.client]

    def submit(self, fn: Callable[..., R], *args: Any, client: str = "server") -> Future[R]:
        """fn(*args) as a job of its own, not counted against the bound (start-up, tests)."""
        future: Future[R] = Future()
        self.put(Job(_once(fn, *args), client, _set_future(future)))
        return future

    def _take(self) -> Job:
        with self.cond:
            while not self.clients:
                self.cond.wait()
            client, jobs = next(iter(self.clients.items()))
            job = jobs.popleft()
            del self.clients[client]  # to the back of the round, if it has more
            if jobs:
                self.clients[client] = jobs
            return job

    def _loop(self) -> None:
        while True:
            job = self._take()
            if job.cancelled or (job.unwanted and not job.started):
                _finish(job, ClientGone())
                continue
            job.started, job.running_since, self.current = True, time.monotonic(), job
            try:
                next(job.steps)
            except StopIteration as stop:
                _finish(job, stop.value)
            except BaseException as e:  # the job's error, to whoever awaits it
                _finish(job, e)
            else:  # more to do: at the head of its client's jobs, its client at the back
                self.put(job, first=True)
            finally:
                job.seconds = job.clock()
                job.running_since, self.current = None, None
                self.chunks += 1


def _finish(job: Job, result: Any) -> None:
    """Hand a job's result over; nothing its receiver does may stop the model thread."""
    try:
        job.done(result)
    except Exception:  # e.g. a concurrent Future cancelled by its waiter
        log.exception("model thread: could not hand over a result")


_thread: ModelThread | None = None
_lock = threading.Lock()


def executor() -> ModelThread:
    """The process's model thread (started on first use)."""
    global _thread
    with _lock:
        if _thread is None:
            _thread = ModelThread()
        return _thread


def _once(fn: Callable[..., R], *args: Any, **kwargs: Any) -> Chunks[R]:
    return fn(*args, **kwargs)
    yield  # a generator: one chunk, the whole call


def _set_future(future: Future) -> Callable[[Any], None]:
    def done(result: Any) -> None:
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)
    return done


# --- from the event loop ---------------------------------------------------------------------

_client: ContextVar[str] = ContextVar("namelab_client", default="local")


class Gone:
    """Whether a request's client has disconnected: set once, by WatchDisconnect. A future
    rather than an asyncio.Event, so that a request awaiting model work hears of it through a
    callback (`until_gone`) instead of a task of its own per request."""

    def __init__(self) -> None:
        self.future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def set(self) -> None:
        if not self.future.done():
            self.future.set_result(None)

    def is_set(self) -> bool:
        return self.future.done()

    async def wait(self) -> None:
        await asyncio.shield(self.future)  # a waiter cancelled leaves the flag alone


_gone: ContextVar[Gone | None] = ContextVar("namelab_gone", default=None)


def client() -> str:
    """The current request's client (its address), as the queue knows it."""
    return _client.get()


async def run(fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
    """fn(*args, **kwargs) on the model thread, awaited without blocking the event loop; one
    job, one chunk."""
    call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
    return await submit(lambda: _once(call))


async def submit(make: Callable[[], Iterator[None]], counted: bool = True) -> Any:
    """Run the job `make()` for the current request's client and await its result; dropped if
    the client disconnects first (ClientGone). `counted`: against the queue's bound."""
    thread, loop = executor(), asyncio.get_running_loop()
    future = loop.create_future()
    if counted:
        thread.admit()

    def done(result: Any) -> None:
        settle_on(loop, future, result)

    since = thread.chunks
    steps = make()

    def counted_steps():
        result = yield from steps
        thread.waited("light", since)
        return result

    job = Job(counted_steps(), client(), done)
    thread.put(job)
    try:
        return await until_gone(future, lambda: thread.cancel(job))
    finally:
        if counted:
            thread.release(outcome(job.cancelled, job.started))


def outcome(cancelled: bool, started: bool) -> str:
    return ("stopped" if started else "dropped") if cancelled else "served"


async def until_gone(future: asyncio.Future, cancel: Callable[[], None]) -> Any:
    """The future's result; if the request's client disconnects (or the request is cancelled)
    first: cancel(), and ClientGone (or the cancellation)."""
    gone = _gone.get()

    def left(_: asyncio.Future) -> None:
        if not future.done():
            cancel()
            future.set_exception(ClientGone("the client disconnected"))

    if gone is not None:
        if gone.is_set():
            left(gone.future)
        else:
            gone.future.add_done_callback(left)
    try:
        result = await future
    except asyncio.CancelledError:
        cancel()
        raise
    finally:
        if gone is not None:
            gone.future.remove_done_callback(left)
    if isinstance(result, BaseException):
        raise result
    return result


def settle_on(loop: asyncio.AbstractEventLoop, future: asyncio.Future, result: Any) -> None:
    """From the model thread: the future's result (or exception), on its loop (if it runs)."""
    _on_loop(loop, _settle, future, result)


Settlement = tuple[asyncio.AbstractEventLoop, asyncio.Future, Any]  # settle_on's arguments


def settle_all(settlements: list[Settlement]) -> None:
    """settle_on for each, with one wake-up of each loop (a batch's requests share one)."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future, Any]]] = {}
    for loop, future, result in settlements:
        by_loop.setdefault(loop, []).append((future, result))
    for loop, pairs in by_loop.items():
        _on_loop(loop, _settle_each, pairs)


def _on_loop(loop: asyncio.AbstractEventLoop, fn: Callable[..., None], *args: Any) -> None:
    try:
        loop.call_soon_threadsafe(fn, *args)
    except RuntimeError:  # the loop is closed: nobody waits any more
        pass


def _settle(future: asyncio.Future, result: Any) -> None:
    if not future.done():  # a request whose client went away was cancelled
        future.set_result(result)


def _settle_each(pairs: list[tuple[asyncio.Future, Any]]) -> None:
    for future, result in pairs:
        _settle(future, result)


def model_thread(route: Callable[P, R]) -> Callable[P, R]:
    """Decorate a sync route to run it on the model thread instead of FastAPI's thread pool.

    The wrapper is a coroutine function that `functools.wraps` the route: FastAPI awaits it,
    and reads the route's parameters, dependencies and response model through `__wrapped__`.
    """
    if inspect.iscoroutinefunction(route):
        raise TypeError(f"{route.__name__} is async: model_thread is for sync routes")

    @functools.wraps(route)
    async def on_model_thread(*args: P.args, **kwargs: P.kwargs) -> R:
        return await run(_within_deadline, route, *args, **kwargs)

    return on_model_thread  # type: ignore[return-value]


class Unless(Deadline):
    """A deadline that also passes once `gone()` (its client has left)."""

    def __init__(self, deadline: Deadline, gone: Callable[[], bool]) -> None:
        self.deadline, self.gone = deadline, gone
        self.clock, self.at = deadline.clock, deadline.at

    def passed(self) -> bool:
        return self.gone() or self.deadline.passed()


def request_deadline() -> Deadline:
    """A request's deadline, started when the model thread picks the request up; it counts
    the model time of the job running it (not the chunks of others run in between), and
    passes at once when that job is cancelled (its client left): a route run as one chunk
    (`model_thread`) is never stopped between chunks, so its sampling or search stops at its
    next look at the deadline instead."""
    job = executor().current
    if job is None:
        return Deadline(MODEL_SECONDS)
    return Unless(Deadline(MODEL_SECONDS, clock=job.clock), lambda: job.cancelled)


def _within_deadline(route: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    with bounded(request_deadline()):
        return route(*args, **kwargs)


# --- the server's side: who is asking, whether they are still there, the 503, the metrics -----


class WatchDisconnect:
    """Sets each HTTP request's client (its address) and watches for its disconnect.

    Once the app has read the request's body (at once for a request without one), this reads
    the rest of what the server sends, which is only ever http.disconnect: the queue then drops
    the request's model work (`until_gone`). The app reading on is told of the disconnect too.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        gone = Gone()
        first: list[Message] = []
        watcher: asyncio.Task | None = None

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()

        headers = dict(scope["headers"])
        if b"transfer-encoding" not in headers and headers.get(b"content-length", b"0") == b"0":
            first.append(await receive())  # a request without a body: its one message
            if first[0]["type"] == "http.disconnect":
                gone.set()
            else:
                watcher = asyncio.ensure_future(watch())

        async def receive_watched() -> Message:
            nonlocal watcher
            if first:
                return first.pop()
            if watcher is not None or gone.is_set():
                await gone.wait()
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.disconnect":
                gone.set()
            elif not message.get("more_body"):
                watcher = asyncio.ensure_future(watch())
            return message

        address = (scope.get("client") or ("local", 0))[0]
        tokens = _client.set(address), _gone.set(gone)
        try:
            await self.app(scope, receive_watched, send)
        finally:
            _client.reset(tokens[0])
            _gone.reset(tokens[1])
            if watcher is not None:
                watcher.cancel()


def busy(request: Request, exc: QueueFull) -> Response:
    """503 with Retry-After: JSON on the API, text elsewhere."""
    headers = {"Retry-After": str(RETRY_AFTER)}
    if request.url.path.startswith("/api/"):
        return JSONResponse({"detail": str(exc)}, status_code=503, headers=headers)
    return PlainTextResponse(f"Service unavailable: {exc}.", status_code=503, headers=headers)


def gone(request: Request, exc: ClientGone) -> Response:
    """Nobody reads it: 499, as nginx logs a request its client closed."""
    return PlainTextResponse("client closed the request", status_code=499)


class QueueMetrics:
    """The model thread's queue in /metrics (a prometheus_client collector)."""

    def collect(self):
        thread = executor()
        with thread.cond:
            counts, admitted, chunks = dict(thread.counts), thread.admitted, thread.chunks
            waits = {size: list(c) for size, c in thread.waits.items()}
            sums = dict(thread.wait_sums)
        total = CounterMetricFamily(
            "namelab_model_queue", "requests for the model thread by outcome: served, "
            "rejected (queue full: 503), dropped (client left before its work started), "
            "stopped (client left during it)", labels=["outcome"])
        for outcome, n in counts.items():
            total.add_metric([outcome], n)
        yield total
        yield GaugeMetricFamily("namelab_model_queue_requests",
                                "requests in the model thread's hands now", value=admitted)
        yield CounterMetricFamily("namelab_model_chunks", "chunks of model work run",
                                  value=chunks)
        wait = HistogramMetricFamily(
            "namelab_model_wait_chunks", "chunks finished between a request's joining the "
            "model thread's queue and its answer (its last one not included), by its size: "
            "light (one chunk) or heavy", labels=["size"])
        for size, counts in waits.items():
            wait.add_metric([size], [("+Inf" if le == float("inf") else str(le), n)
                                     for le, n in zip(WAIT_BUCKETS, counts, strict=True)],
                            sum_value=sums[size])
        yield wait


def configure(max_queue: int) -> None:
    executor().max_queue = max_queue


def install(app) -> None:
    """The watcher of clients (outside the app's other middleware: it sees every request) and
    the answers to QueueFull (503) and ClientGone."""
    app.add_middleware(WatchDisconnect)
    app.add_exception_handler(QueueFull, busy)
    app.add_exception_handler(ClientGone, gone)
