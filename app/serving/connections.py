"""The connection layer of `namelab serve`: the limits uvicorn lacks, and a server that stops.

uvicorn's HTTP protocol (httptools, the parser Namelab depends on) has no limit on a request's
head: one connection sending 200 MB of headers was answered 200 OK with +168 MB of resident
memory; a connection that sends nothing, or a byte a second, stays open for good (uvicorn's
keep-alive timeout starts only after a first response); and every accepted connection holds a
descriptor until the process runs out of them. Its own options do not cover this:
`h11_max_incomplete_event_size` applies to the h11 parser only (and answers 400, not 431);
`limit_concurrency` answers 503 only once a request's head has been parsed, so silent
connections still take descriptors (and counting connections in it, an active connection's
own request gets 503 at the limit); there is no option for a header count or for the time to
receive a head. So `LimitedHttpTools` (a small subclass of uvicorn's protocol) adds them,
per connection, from settings (app/config.py):

    max_connections       beyond it a new connection is answered 503 (Retry-After) at once
                          and closed: below the descriptor limit, which start-up raises to
                          fit (`fit_descriptor_limit`)
    max_header_bytes      a request's head (request line and headers) larger: 431, closed;
                          counted as the bytes arrive, before the parser buffers them
    max_headers           more header fields: 431, closed
    head_timeout_seconds  from a connection's start, or a request's first byte, to the end of
                          its head: 408, closed (slowloris; silent connections)

A response leaves in one write: uvicorn writes a response's head and its body to the socket
apart, so a replica killed between the two (SIGKILL, the out-of-memory killer) had sent a head
without its body, and the balancer in front (deploy/haproxy), which sends a request again only
while nothing of its answer has reached the client, passed on a truncated answer. The protocol's
transport (`OneWrite`) holds what is written until the response is complete (uvicorn's
`on_response_complete`, called right after its last write) and hands it to the socket as one
write: the kernel has all of it, or none. A streamed response's parts leave at the latest at the
end of the event loop's turn they were written in. (Holding every write until the end of the
turn instead cost the model requests 20-60% more CPU each under load: their answers left a turn
later, and the requests that follow them came back too late to join the model thread's batch.)

uvicorn's own options cover the rest: `timeout_keep_alive` (idle connections between requests,
NAMELAB_KEEP_ALIVE_SECONDS) and `timeout_graceful_shutdown`. `serve` runs uvicorn with all of
it and stops within NAMELAB_SHUTDOWN_GRACE_SECONDS of a SIGTERM whatever is stuck: requests in
flight are cancelled a second before the grace ends (uvicorn), and a watchdog ends the
process at the grace (a model thread in a loop would otherwise keep it alive). With
`--workers N`, uvicorn's supervisor makes each worker's server itself and waits for the workers
without a timeout (`Multiprocess.join_all`): `GracefulMultiprocess` gives each worker a
GracefulServer (its own watchdog, the grace read from NAMELAB_SHUTDOWN_GRACE_SECONDS as the
worker reads its other settings) and kills a worker still alive a second after its grace.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import ClassVar

import httptools
import uvicorn
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.supervisors import Multiprocess, multiprocess

from app.config import Settings

log = logging.getLogger("namelab.http")

SPARE_DESCRIPTORS = 64  # for the models, the logs, the listening socket, the event loop
LINGER_SECONDS = 1.0  # a refused connection reads what the client sent before closing
MAX_LINGERING = 256  # refused connections lingering at once; beyond, closed at once
WARN_EVERY = 10.0  # seconds: refused connections are logged at most this often


class _Refused(Exception):
    """Raised from a parser callback to stop parsing a request that was answered already."""


class LimitedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol with limits on connections, heads and their time.

    The limits are class attributes: `protocol(settings)` makes a subclass holding them."""

    max_connections: ClassVar[int]
    max_header_bytes: ClassVar[int]
    max_headers: ClassVar[int]
    head_timeout: ClassVar[float]
    lingering: ClassVar[int] = 0  # refused connections lingering now, in this process
    refused: ClassVar[dict[int, int]] = {}  # status -> count since the last warning
    last_warning: ClassVar[float] = 0.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._head: int | None = 0  # bytes of the head being received; None: past its end
        self._fields = 0
        self._too_many = False
        self._head_timer: asyncio.TimerHandle | None = None
        self._turned_away = False
        self._stop: _Refused | None = None
        if len(self.connections) >= self.max_connections:
            self._turn_away(transport)
            return
        super().connection_made(OneWrite(transport, self.loop))  # type: ignore[arg-type]
        self._start_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        if self._turned_away:
            self._turned_away = False
            type(self).lingering -= 1
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._turned_away or self.parser is None:
            return  # read and dropped: the answer is sent
        self._unset_keepalive_if_required()
        while data:
            if self._head is None:  # a body: the parser's and the app's own limits
                chunk, data = data, b""
            else:
                room = self.max_header_bytes - self._head
                if room <= 0:
                    self._refuse(431, f"Request header fields too large: the head of a request "
                                      f"is at most {self.max_header_bytes} bytes")
                    return
                chunk, data = data[:room], data[room:]
                self._head += len(chunk)
            if not self._feed(chunk):
                return

    def _feed(self, chunk: bytes) -> bool:
        """Feed the parser as uvicorn does; False once the connection is answered."""
        try:
            self.parser.feed_data(chunk)
        except httptools.HttpParserUpgrade:
            self._unsupported_upgrade_warning()  # no WebSockets here
        except httptools.HttpParserError:
            if self._stop is not None:
                return False
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self.send_400_response(msg)
            return False
        return not self.transport.is_closing()

    # parser callbacks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._fields, self._too_many = 0, False
        self._start_head_timer()  # a kept-alive connection's next request

    def on_header(self, name: bytes, value: bytes) -> None:
        self._fields += 1
        if self._fields > self.max_headers:
            self._too_many = True  # answered once the head is complete; not stored
            return
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._head = None
        self._stop_head_timer()
        if self._too_many:
            self._refuse(431, f"Request header fields too large: at most {self.max_headers} "
                              f"header fields")
            self._stop = _Refused()
            raise self._stop
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._head = 0  # what follows is the next request's head
        super().on_message_complete()

    def on_response_complete(self) -> None:
        self.transport.flush()  # the response's head and body, in one write, now
        super().on_response_complete()

    # the limits' answers

    def _start_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self._refuse(408, f"Request Timeout: a request's head must arrive within "
                              f"{self.head_timeout:g} s")

    def _refuse(self, status: int, message: str) -> None:
        """Answer `status` and close, unless a response is on its way on this connection
        (pipelining): then close only."""
        self._count(status)
        if self.cycle is None or self.cycle.response_complete:
            self.transport.write(_response(status, message))
        self.transport.close()

    def _turn_away(self, transport: asyncio.Transport) -> None:
        """503 to a connection over max_connections, sent at once. The connection then reads
        and drops what the client sends for up to LINGER_SECONDS before closing (closing with
        its request unread would reset the connection, and the client could miss the 503)."""
        self.transport = transport
        self._count(503)
        transport.write(_response(503, f"Service Unavailable: at most {self.max_connections} "
                                       f"connections at once", retry_after=1))
        if type(self).lingering >= MAX_LINGERING or not transport.can_write_eof():
            transport.close()
            return
        type(self).lingering += 1
        self._turned_away = True
        transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, transport.close)

    def _count(self, status: int) -> None:
        cls = type(self)
        cls.refused[status] = cls.refused.get(status, 0) + 1
        now = time.monotonic()
        if now - cls.last_warning >= WARN_EVERY:
            counts = ", ".join(f"{n} x {s}" for s, n in sorted(cls.refused.items()))
            log.warning("connection limits: answered %s (since the last such line)", counts)
            cls.refused, cls.last_warning = {}, now


class OneWrite:
    """A transport that holds its writes until `flush()` (the protocol's, when a response is
    complete), a close, or the end of the event loop's turn, and hands them to the socket as one
    write. Everything else is the wrapped transport's."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if not self._pending:
            self._loop.call_soon(self.flush)  # a streamed part: at the end of the turn
        self._pending.append(bytes(data))

    def writelines(self, lines) -> None:
        for data in lines:
            self.write(data)

    def flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            if not self._transport.is_closing():  # else the peer is gone: nowhere to send it
                self._transport.write(data)

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending.clear()
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._pending))

    def __getattr__(self, name: str):
        return getattr(self._transport, name)


def _response(status: int, message: str, retry_after: int | None = None) -> bytes:
    body = message.encode()
    head = [STATUS_LINE[status], b"content-type: text/plain; charset=utf-8\r\n",
            b"content-length: %d\r\n" % len(body), b"connection: close\r\n"]
    if retry_after is not None:
        head.append(b"retry-after: %d\r\n" % retry_after)
    return b"".join([*head, b"\r\n", body])


def protocol(settings: Settings) -> type[LimitedHttpTools]:
    """The protocol class with the settings' limits."""
    return type("NamelabHttp", (LimitedHttpTools,), {
        "max_connections": settings.max_connections,
        "max_header_bytes": settings.max_header_bytes,
        "max_headers": settings.max_headers,
        "head_timeout": settings.head_timeout_seconds,
        "refused": {},
        "__module__": __name__,
    })


def __getattr__(name: str):
    """`app.serving.connections:FromEnvironment`: the protocol with the limits of NAMELAB_* (how
    uvicorn's worker processes import it by name, and `uvicorn --http ...` can)."""
    if name == "FromEnvironment":
        return protocol(Settings())
    raise AttributeError(name)


def fit_descriptor_limit(max_connections: int) -> None:
    """Raise the soft descriptor limit to fit max_connections (and SPARE_DESCRIPTORS), up to
    the hard limit; ValueError naming both when it cannot."""
    need = max_connections + SPARE_DESCRIPTORS
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            raise ValueError(f"NAMELAB_MAX_CONNECTIONS={max_connections} needs {need} file "
                             f"descriptors but the limit is {hard} (ulimit -Hn): lower it")
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))


class GracefulServer(uvicorn.Server):
    """uvicorn's server with a watchdog: the process ends `grace` seconds after the first
    SIGTERM or SIGINT, whatever still runs (uvicorn cancels requests in flight before)."""

    def __init__(self, config: uvicorn.Config, grace: float) -> None:
        super().__init__(config)
        self.grace = grace
        self.watchdog: threading.Timer | None = None

    def handle_exit(self, sig: int, frame) -> None:
        if self.watchdog is None:
            self.watchdog = threading.Timer(self.grace, _stop_now, (sig, self.grace))
            self.watchdog.daemon = True
            self.watchdog.start()
        super().handle_exit(sig, frame)


def _stop_now(sig: int, grace: float) -> None:
    log.error("still running %g s after signal %d: stopping now", grace, sig)
    logging.shutdown()
    os._exit(128 + sig)


class GracefulProcess(multiprocess.Process):
    """A uvicorn worker process whose server is a GracefulServer."""

    @property
    def server(self) -> uvicorn.Server:
        if self._server is None:
            self._server = GracefulServer(self.config, Settings().shutdown_grace_seconds)
        return self._server


class GracefulMultiprocess(Multiprocess):
    """uvicorn's supervisor with GracefulProcess workers, and a bounded wait for them."""

    def __init__(self, config: uvicorn.Config, sockets, grace: float) -> None:
        super().__init__(config, sockets=sockets)
        self.grace = grace

    def run(self) -> None:
        with _workers(GracefulProcess):  # the name uvicorn's supervisor makes workers with
            super().run()

    def join_all(self) -> None:
        deadline = time.monotonic() + self.grace + 1
        for process in self.processes:
            process.process.join(max(0.0, deadline - time.monotonic()))
            if process.process.is_alive():
                log.error("worker %s still running %g s after SIGTERM: killing it",
                          process.pid, self.grace + 1)
                process.kill()
                process.process.join()


@contextmanager
def _workers(kind: type[multiprocess.Process]) -> Iterator[None]:
    real = multiprocess.Process
    multiprocess.Process = kind  # type: ignore[misc]
    try:
        yield
    finally:
        multiprocess.Process = real  # type: ignore[misc]


def serve(app, settings: Settings, **options) -> bool:
    """Run uvicorn (one GracefulServer, or settings.workers under uvicorn's supervisor); False
    when the one process failed to start."""
    fit_descriptor_limit(settings.max_connections)
    grace = settings.shutdown_grace_seconds
    config = uvicorn.Config(
        app, **options,
        http=(protocol(settings) if settings.workers == 1
              else "app.serving.connections:FromEnvironment"),
        timeout_graceful_shutdown=max(1, int(grace) - 1))
    if settings.workers == 1:
        server = GracefulServer(config, grace)
        server.run()
        return server.started
    # uvicorn's supervisor makes each worker's server itself: a GracefulServer here too.
    GracefulMultiprocess(config, [config.bind_socket()], grace).run()
    return True

