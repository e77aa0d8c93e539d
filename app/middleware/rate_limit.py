"""RateLimit: optional (settings.rate_limit_per_minute): 429 with Retry-After past a client's
budget. Probes and scrapes are never limited."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from app.middleware.respond import send_json

NOT_LIMITED = ("/healthz", "/readyz", "/metrics")  # probes and scrapes are never rate limited


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
