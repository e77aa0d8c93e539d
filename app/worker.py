"""The one thread that runs model code in a server process.

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

Since requests queue for it, no request may hold it long. What bounds a request's work is a
count, so that the same request gets the same answer on any machine and at any load: names
drawn (app/services.py, MAX_SAMPLE_DRAWS), prefixes expanded by the search
(app/lm/search.py, MAX_EXPANSIONS), and the size of the input. Each route also runs under a
deadline of MODEL_SECONDS of model time (from when the thread picks the request up;
`app.lm.deadline`), a safety net only: several times what the count-bounded work takes on an
idle machine (docs/determinism.md). Sampling and search stop when it passes, answer with what
they found and say so (`timed_out: true`, a sentence on the pages).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from app.lm.deadline import Deadline, bounded

P = ParamSpec("P")
R = TypeVar("R")

MODEL_SECONDS = 10.0  # model time per request, at most (about: checked between forward passes)

_pool: ThreadPoolExecutor | None = None
_lock = threading.Lock()


def executor() -> ThreadPoolExecutor:
    """The process's model thread (started on first use)."""
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="namelab-model")
        return _pool


async def run(fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
    """fn(*args, **kwargs) on the model thread, awaited without blocking the event loop."""
    call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(executor(), call)


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


def request_deadline() -> Deadline:
    """A request's deadline, started when the model thread picks the request up."""
    return Deadline(MODEL_SECONDS)


def _within_deadline(route: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    with bounded(request_deadline()):
        return route(*args, **kwargs)
