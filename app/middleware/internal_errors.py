"""InternalErrors: an unexpected exception becomes a bare 500; no traceback leaves the server."""

from __future__ import annotations

import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.middleware.respond import send_json

log = logging.getLogger("namelab.http")


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
