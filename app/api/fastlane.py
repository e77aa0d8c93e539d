"""The fast lane: the JSON API's two busiest routes, answered without FastAPI's request handling.

`POST /api/models/{model}/score` and `POST /api/models/{model}/sample` are what programs call
in bulk. Through FastAPI, a one-name score cost ~360 us of the event loop's CPU against
`/healthz`'s ~220 us, most of the difference FastAPI's own: matching the path among the app's
routes, solving the dependencies, reading and validating the body (issue 28: py-spy showed where
it went); through the lane, ~230 us (bench/bench_throughput.py splits the CPU per request).
`FastLane`, an ASGI middleware just outside the routes (every other middleware still sees the
request), answers such a request itself when everything about it is plain: a loaded model's name, a
`Content-Type: application/json` body that Python's JSON parser reads (as FastAPI's does) and
that the route's own request model validates. It then calls the route's own answer
(`score.answer`, `sample.answer`), so the two lanes share every line after the parsing, and
an error those raise is answered by the app's own handler for it.

Anything else (an unknown model, another content type, a body that is not JSON or does not
validate, no models loaded) goes on to FastAPI with the body it sent, untouched: every refusal
is FastAPI's, word for word. /docs still describes these routes from their FastAPI declarations;
tests/api/test_fastlane.py checks that both lanes give the same answers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from inspect import iscoroutinefunction

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api import sample, score
from app.api.schemas import SampleRequest, ScoreRequest
from app.middleware.body_limit import replay
from app.store.registry import LoadedModel

Answer = Callable[[Request, LoadedModel, BaseModel], Awaitable[Response]]
PATH = re.compile(r"/api/models/([^/]+)/(score|sample)")
LANES: dict[str, tuple[type[BaseModel], Answer]] = {
    "score": (ScoreRequest, score.answer),
    "sample": (SampleRequest, sample.answer),
}


class FastLane:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = (PATH.fullmatch(scope["path"])
                 if scope["type"] == "http" and scope["method"] == "POST" else None)
        if match is None or not is_json(scope):
            return await self.app(scope, receive, send)
        body, message = await read_body(receive)
        if message is not None:  # the client went away: FastAPI reads on and sees it too
            return await self.app(scope, replay(body, receive, message), send)
        registry = getattr(scope["app"].state, "registry", None)
        m = registry.models.get(match[1]) if registry is not None else None
        kind, answer = LANES[match[2]]
        try:
            req = kind.model_validate(json.loads(body)) if m is not None else None
        except Exception:  # not JSON, or not valid (or nested too deep): FastAPI's refusal
            req = None
        if req is None:
            return await self.app(scope, replay(body, receive), send)
        request = Request(scope, replay(body, receive))
        try:
            response = await answer(request, m, req)
        except Exception as exc:
            handler = handler_for(scope["app"].exception_handlers, exc)
            if handler is None:
                raise  # a bug: the 500 of any route (app/middleware/internal_errors.py)
            response = (await handler(request, exc) if iscoroutinefunction(handler)
                        else handler(request, exc))
        await response(scope, receive, send)


def is_json(scope: Scope) -> bool:
    """Whether the request says its body is application/json (any parameters)."""
    for name, value in scope["headers"]:
        if name == b"content-type":
            return value.split(b";", 1)[0].strip().lower() == b"application/json"
    return False


async def read_body(receive: Receive) -> tuple[bytes, Message | None]:
    """The whole body, and the message that ended it early (http.disconnect) if one did."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), message
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks), None


def handler_for(handlers: dict, exc: Exception) -> Callable | None:
    """The app's handler for `exc` (the most specific class first), as Starlette's exception
    middleware finds it; None for one only the server-error middleware handles (Exception)."""
    for cls in type(exc).__mro__:
        if cls is Exception:
            return None
        if cls in handlers:
            return handlers[cls]
    return None
