"""A deadline for bounded work: sampling and search check it between steps, stop once it has
passed and return what they found so far.

The deadline of the work in progress is ambient (a context variable), so that whoever starts a
unit of work (the server's model thread starts one per request: `app.serving.worker`) bounds
everything it calls without passing the deadline through every layer. Outside such a unit there is
none: the command line samples as long as it is asked to.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar


class Deadline:
    """`seconds` from now on `clock` (monotonic time by default)."""

    def __init__(self, seconds: float, clock: Callable[[], float] | None = None) -> None:
        self.clock = clock or time.monotonic
        self.at = self.clock() + seconds

    def passed(self) -> bool:
        return self.clock() >= self.at


_current: ContextVar[Deadline | None] = ContextVar("namelab_deadline", default=None)


def current() -> Deadline | None:
    """The deadline of the work in progress, or None (no bound)."""
    return _current.get()


def passed(deadline: Deadline | None) -> bool:
    return deadline is not None and deadline.passed()


@contextmanager
def bounded(deadline: Deadline) -> Iterator[Deadline]:
    """Run the body under `deadline` (what current() returns inside it)."""
    token = _current.set(deadline)
    try:
        yield deadline
    finally:
        _current.reset(token)
