"""What a middleware answers with when it refuses a request itself: a JSON body with `detail`."""

from __future__ import annotations

from starlette.responses import JSONResponse
from starlette.types import Message, Send


async def send_json(send: Send, status: int, detail: str, headers: dict | None = None) -> None:
    response = JSONResponse({"detail": detail}, status_code=status, headers=headers)
    await response({"type": "http"}, _no_body, send)


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}
