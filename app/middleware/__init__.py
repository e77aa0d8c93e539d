"""HTTP hardening and observability, installed by create_app(): plain ASGI middleware.

From the outside in, a request meets:

    metrics (Prometheus)  counts and times every response, the refusals below included
    SecurityHeaders       CSP without inline script, nosniff, Referrer-Policy, no framing
    RequestLog            one structured log line per request: method, path, status, duration
    InternalErrors        an unexpected exception becomes a bare 500: no traceback leaves
    RateLimit             optional (settings.rate_limit_per_minute): 429 past the client's budget
    BodyLimit             413 for a body over settings.max_body_bytes (LARGE_BODIES: a route's
                          own), before anything parses it
    CORS                  only when settings.cors_origins lists origins (answers preflights)
    Methods               HEAD on GET routes; OPTIONS and 405s with every method of the path
    the app

One middleware per module of this folder (respond.py: the JSON refusal they share). Every one
passes non-HTTP scopes through untouched, except StartupErrors, which only looks at the lifespan:
it turns the traceback uvicorn would print for NoModels into one line. The access log goes to
the `namelab.access` logger (app/serving/logs.py sets the loggers up).
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.registry import Collector
from prometheus_fastapi_instrumentator import Instrumentator
from starlette.middleware.cors import CORSMiddleware

from app.config import LARGE_BODIES, Settings
from app.middleware.body_limit import BodyLimit
from app.middleware.internal_errors import InternalErrors
from app.middleware.methods import Methods
from app.middleware.rate_limit import RateLimit
from app.middleware.request_log import RequestLog
from app.middleware.security_headers import SecurityHeaders
from app.middleware.startup_errors import StartupErrors

__all__ = ["StartupErrors", "install"]


def install(app: FastAPI, settings: Settings, docs_paths: Sequence[str] = (),
            collectors: Sequence[Collector] = ()) -> None:
    """Add the middleware (each add_middleware wraps the previous ones) and /metrics (with
    `collectors` of the app's own). `docs_paths`: the API docs pages, whose one inline script
    the CSP allows by its hash."""
    app.add_middleware(Methods, routes=app.router.routes)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins,
                           allow_methods=["GET", "POST"], allow_headers=["Content-Type"])
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes, routes=LARGE_BODIES)
    if settings.rate_limit_per_minute:
        app.add_middleware(RateLimit, per_minute=settings.rate_limit_per_minute)
    app.add_middleware(InternalErrors)
    app.add_middleware(RequestLog)
    docs = {*docs_paths, app.swagger_ui_oauth2_redirect_url} - {None}
    app.add_middleware(SecurityHeaders, docs_paths=frozenset(docs))
    registry = CollectorRegistry()  # one per app: tests build many apps in one process
    ProcessCollector(registry=registry)  # process_resident_memory_bytes and friends
    for collector in collectors:
        registry.register(collector)
    Instrumentator(registry=registry, excluded_handlers=["/metrics"]).instrument(app).expose(
        app, include_in_schema=False)
