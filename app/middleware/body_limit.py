"""BodyLimit: 413 for a body over settings.max_body_bytes (or a route's own larger limit, declared
in app/config.py's LARGE_BODIES), before anything parses it."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.middleware.respond import send_json


class BodyLimit:
    """413 for a body over `max_bytes`, decided before the app (and its parsers) see it.

    A declared Content-Length is checked up front. A chunked body has no length: it is read
    here, at most max_bytes of it, and replayed to the app only if it fits.
    """

    def __init__(self, app: ASGIApp, max_bytes: int,
                 routes: Mapping[str, int] | None = None) -> None:
        self.app, self.max_bytes, self.routes = app, max_bytes, dict(routes or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.routes.get(scope["path"], self.max_bytes)
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is not None:
            if not length.isdigit():
                return await send_json(send, 400, "invalid Content-Length header")
            if int(length) > limit:
                return await self._too_large(send, limit)
        elif b"transfer-encoding" in headers:
            body = await self._read_at_most(receive, limit)
            if body is None:
                return await self._too_large(send, limit)
            receive = replay(body, receive)
        await self.app(scope, receive, send)

    async def _read_at_most(self, receive: Receive, limit: int) -> bytes | None:
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return b""
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > limit:
                return None
            if not message.get("more_body"):
                return b"".join(chunks)

    async def _too_large(self, send: Send, limit: int) -> None:
        await send_json(send, 413, f"request body too large: the limit is {limit} bytes")


def replay(body: bytes, receive: Receive, last: Message | None = None) -> Receive:
    """A receive that gives `body` as one message (then `last`, the message that cut it short,
    if given), then reads on (http.disconnect, when it comes). app/api/fastlane.py uses it too."""
    pending = [{"type": "http.request", "body": body, "more_body": last is not None}]
    if last is not None:
        pending.append(last)

    async def replayed() -> Message:
        return pending.pop(0) if pending else await receive()

    return replayed
