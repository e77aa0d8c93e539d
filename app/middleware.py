"""HTTP hardening and observability, installed by create_app(): plain ASGI middleware.

From the outside in, a request meets:

    metrics (Prometheus)  counts and times every response, the refusals below included
    SecurityHeaders       CSP without inline script, nosniff, Referrer-Policy, no framing
    RequestLog            one structured log line per request: method, path, status, duration
    InternalErrors        an unexpected exception becomes a bare 500: no traceback leaves
    RateLimit             optional (settings.rate_limit_per_minute): 429 past the client's budget
    BodyLimit             413 for a body over settings.max_body_bytes, before anything parses it
    CORS                  only when settings.cors_origins lists origins (answers preflights)
    Methods               HEAD on GET routes; OPTIONS and 405s with every method of the path
    the app

Every class here passes non-HTTP scopes through untouched, except StartupErrors, which only
looks at the lifespan: it turns the traceback uvicorn would print for NoModels into one line.
The access log and the refused checkpoints go to the `namelab` logger (configure_logging).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import logging
import math
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.registry import Collector
from prometheus_fastapi_instrumentator import Instrumentator
from starlette.datastructures import MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Match, Mount, compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.config import Settings

log = logging.getLogger("namelab.http")
access_log = logging.getLogger("namelab.access")

# No inline script, no plugins, no framing, nothing loaded from elsewhere.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
# /docs starts Swagger UI with an inline script: allowed there (and only there) by its sha256, added
# per response. Still no 'unsafe-inline' script and no framing; ReDoc needs inline styles and a
# blob: worker. Their scripts are the app's own (fastapi-offline, see main.py): no other host.
DOCS_URL, REDOC_URL = "/docs", "/redoc"
DOCS_CSP = ("default-src 'self'; script-src 'self'{hashes}; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; object-src 'none'; "
            "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate CSP 2
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)
NOT_LIMITED = ("/healthz", "/readyz", "/metrics")  # probes and scrapes are never rate limited


def install(app: FastAPI, settings: Settings, collectors: Sequence[Collector] = ()) -> None:
    """Add the middleware (each add_middleware wraps the previous ones) and /metrics (with
    `collectors` of the app's own)."""
    app.add_middleware(Methods, routes=app.router.routes)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins,
                           allow_methods=["GET", "POST"], allow_headers=["Content-Type"])
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    if settings.rate_limit_per_minute:
        app.add_middleware(RateLimit, per_minute=settings.rate_limit_per_minute)
    app.add_middleware(InternalErrors)
    app.add_middleware(RequestLog)
    docs = {DOCS_URL, REDOC_URL, app.swagger_ui_oauth2_redirect_url} - {None}
    app.add_middleware(SecurityHeaders, docs_paths=frozenset(docs))
    document_refusals(app, settings)
    registry = CollectorRegistry()  # one per app: tests build many apps in one process
    ProcessCollector(registry=registry)  # process_resident_memory_bytes and friends
    for collector in collectors:
        registry.register(collector)
    Instrumentator(registry=registry, excluded_handlers=["/metrics"]).instrument(app).expose(
        app, include_in_schema=False)


ERROR_BODY = {"application/json": {"schema": {
    "type": "object", "required": ["detail"], "properties": {"detail": {"type": "string"}}}}}


def document_refusals(app: FastAPI, settings: Settings) -> None:
    """Put what is answered before any route runs into the API's own OpenAPI document: 400
    (unparseable body) and 413 for operations with a body, 429 when rate limiting is on."""
    build = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            for path, item in build()["paths"].items():
                for op in item.values():
                    extra = {}
                    if "requestBody" in op:
                        extra["400"] = "The body is not valid JSON."
                        extra["413"] = f"The body is over {settings.max_body_bytes} bytes."
                    if settings.rate_limit_per_minute and path not in NOT_LIMITED:
                        extra["429"] = "Too many requests from this client; see Retry-After."
                    for code, text in extra.items():
                        op["responses"].setdefault(code, {"description": text,
                                                          "content": ERROR_BODY})
        return app.openapi_schema

    app.openapi = openapi


def configure_logging(level: str) -> None:
    """The `namelab` loggers print to stderr next to uvicorn's (one handler, however many apps
    a process builds; records still propagate, so tests can capture them)."""
    logger = logging.getLogger("namelab")
    logger.setLevel(level.upper())
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        logger.addHandler(handler)


async def send_json(send: Send, status: int, detail: str, headers: dict | None = None) -> None:
    response = JSONResponse({"detail": detail}, status_code=status, headers=headers)
    await response({"type": "http"}, _no_body, send)


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


class SecurityHeaders:
    def __init__(self, app: ASGIApp, docs_paths: frozenset[str] = frozenset()) -> None:
        self.app, self.docs_paths = app, docs_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if scope["path"] in self.docs_paths:
            return await self.app(scope, receive, self._docs_sender(send))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                self._add_headers(message, CSP)
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _docs_sender(self, send: Send) -> Send:
        """Hold the (small) docs page back until its inline scripts can be hashed."""
        held: list[Message] = []

        async def send_docs(message: Message) -> None:
            held.append(message)
            if message["type"] == "http.response.start" or message.get("more_body"):
                return
            body = b"".join(m.get("body", b"") for m in held[1:])
            hashes = "".join(
                f" 'sha256-{base64.b64encode(hashlib.sha256(s).digest()).decode()}'"
                for s in INLINE_SCRIPT.findall(body)
            )
            self._add_headers(held[0], DOCS_CSP.format(hashes=hashes))
            await send(held[0])
            await send({"type": "http.response.body", "body": body})

        return send_docs

    @staticmethod
    def _add_headers(message: Message, csp: str) -> None:
        headers = MutableHeaders(scope=message)
        headers["Content-Security-Policy"] = csp
        for name, value in HEADERS.items():
            headers[name] = value


class RequestLog:
    """One line per request on the `namelab.access` logger; the message is a JSON object."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = 500  # if the app raises before answering

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            fields = {
                "method": scope["method"],
                "path": scope["path"],
                "status": status,
                "duration_ms": round((time.perf_counter() - start) * 1000, 2),
                "client": (scope.get("client") or ("-",))[0],
            }
            access_log.info(json.dumps(fields), extra={"http": fields})


class Methods:
    """HEAD and OPTIONS for every route, and the right `Allow`.

    FastAPI routes answer only the methods they declare, and a path with two routes (GET and
    POST .../sample) answers a 405 naming the first route's methods only. Here: HEAD runs the
    GET and sends its status and headers without the body; OPTIONS is answered 204 with
    `Allow` (a CORS preflight never gets here: CORS answers it first); every 405 gets an
    `Allow` listing every method of every route at that path.
    """

    def __init__(self, app: ASGIApp, routes: list[BaseRoute]) -> None:
        self.app, self.routes = app, routes  # the app's live list of routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if scope["method"] == "OPTIONS" and (allow := self.allowed(scope)):
            response = Response(status_code=204, headers={"Allow": allow})
            return await response(scope, receive, send)
        if scope["method"] == "HEAD":
            scope, send = {**scope, "method": "GET"}, _without_body(send)

        async def send_with_allow(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 405:
                MutableHeaders(scope=message)["Allow"] = self.allowed(scope)
            await send(message)

        await self.app(scope, receive, send_with_allow)

    def allowed(self, scope: Scope) -> str:
        """'GET, HEAD, OPTIONS, POST': the methods of the routes at scope's path, or ''."""
        methods: set[str] = set()
        for path, route_methods, route in _flat_routes(self.routes):
            if isinstance(route, Mount):  # static files: whatever is under the mount
                if route.matches(scope)[0] != Match.NONE:
                    methods.add("GET")
            elif path is not None and _path_regex(path).match(scope["path"]):
                methods |= route_methods or {"GET"}
        if methods:
            methods |= {"HEAD", "OPTIONS"} if "GET" in methods else {"OPTIONS"}
        return ", ".join(sorted(methods))


def _flat_routes(routes: list[BaseRoute]) -> Iterator[tuple[str | None, set[str] | None,
                                                             BaseRoute]]:
    """(full path, methods, route) of every route, those of included routers too (recent
    FastAPI keeps an included router as one nested route; older ones copied its routes)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # FastAPI before nested routers
        for route in routes:
            yield getattr(route, "path", None), getattr(route, "methods", None), route
        return
    for ctx in iter_route_contexts(routes):
        yield ctx.path, ctx.methods, ctx.original_route


@functools.lru_cache(maxsize=256)
def _path_regex(path: str) -> re.Pattern:
    return compile_path(path)[0]


def _without_body(send: Send) -> Send:
    async def send_head(message: Message) -> None:
        if message["type"] == "http.response.body":
            message = {**message, "body": b""}
        await send(message)

    return send_head


class InternalErrors:
    """An unexpected exception is logged with its traceback and answered with a bare 500."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def send_and_note(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        except Exception:
            log.exception("unhandled error in %s %s", scope["method"], scope["path"])
            if started:  # too late for a clean 500: let the server drop the connection
                raise
            await send_json(send, 500, "internal server error")


class BodyLimit:
    """413 for a body over `max_bytes`, decided before the app (and its parsers) see it.

    A declared Content-Length is checked up front. A chunked body has no length: it is read
    here, at most max_bytes of it, and replayed to the app only if it fits.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is not None:
            if not length.isdigit():
                return await send_json(send, 400, "invalid Content-Length header")
            if int(length) > self.max_bytes:
                return await self._too_large(send)
        elif b"transfer-encoding" in headers:
            body = await self._read_at_most(receive)
            if body is None:
                return await self._too_large(send)
            receive = _replay(body, receive)
        await self.app(scope, receive, send)

    async def _read_at_most(self, receive: Receive) -> bytes | None:
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return b""
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                return None
            if not message.get("more_body"):
                return b"".join(chunks)

    async def _too_large(self, send: Send) -> None:
        await send_json(send, 413, f"request body too large: the limit is {self.max_bytes} bytes")


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()  # http.disconnect, when it comes
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


class RateLimit:
    """A token bucket per client IP: `per_minute` requests, refilled continuously.

    Per worker process and in memory: with N workers or replicas a client gets up to N times
    the budget; a shared limit belongs in the load balancer. Behind a proxy the client IP is
    the proxy's unless uvicorn trusts it (FORWARDED_ALLOW_IPS).
    """

    MAX_CLIENTS = 10_000  # memory bound: idle clients are forgotten past this

    def __init__(self, app: ASGIApp, per_minute: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.app, self.capacity, self.clock = app, float(per_minute), clock
        self.rate = per_minute / 60.0  # tokens per second
        self.buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, when)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in NOT_LIMITED:
            return await self.app(scope, receive, send)
        client = (scope.get("client") or ("unknown",))[0]
        now = self.clock()
        tokens, then = self.buckets.get(client, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - then) * self.rate)
        if tokens < 1:
            wait = math.ceil((1 - tokens) / self.rate)
            return await send_json(send, 429, f"too many requests: retry in {wait} s",
                                   headers={"Retry-After": str(wait)})
        self.buckets[client] = (tokens - 1, now)
        if len(self.buckets) > self.MAX_CLIENTS:
            self._forget_idle(now)
        await self.app(scope, receive, send)

    def _forget_idle(self, now: float) -> None:
        full = [c for c, (t, then) in self.buckets.items()
                if t + (now - then) * self.rate >= self.capacity]
        for client in full or list(self.buckets):
            del self.buckets[client]


class StartupErrors:
    """For the start-up errors the operator must fix (`errors`, e.g. NoModels), log one line
    instead of uvicorn's traceback.

    Starlette reports a failed lifespan start with the traceback as the message, from inside
    its `except` block: the exception is in sys.exc_info() there, and its text is enough.
    """

    def __init__(self, app: ASGIApp, errors: tuple[type[BaseException], ...]) -> None:
        self.app, self.errors = app, errors

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            return await self.app(scope, receive, send)

        async def send_one_line(message: Message) -> None:
            error = sys.exc_info()[1]
            if message["type"] == "lifespan.startup.failed" and isinstance(error, self.errors):
                message = {**message, "message": f"namelab: {error}"}
            await send(message)

        await self.app(scope, receive, send_one_line)
