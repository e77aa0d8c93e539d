"""StartupErrors: looks only at the lifespan; turns the traceback uvicorn would print for an
expected start-up error (no valid model) into one line."""

from __future__ import annotations

import sys

from starlette.types import ASGIApp, Message, Receive, Scope, Send


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
