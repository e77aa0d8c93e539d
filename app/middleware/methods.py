"""Methods: HEAD on GET routes; OPTIONS and 405s that name every method of the path."""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.serving.routes import flat_routes, path_regex


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
        for path, route_methods, route in flat_routes(self.routes):
            if isinstance(route, Mount):  # static files: whatever is under the mount
                if route.matches(scope)[0] != Match.NONE:
                    methods.add("GET")
            elif path is not None and path_regex(path).match(scope["path"]):
                methods |= route_methods or {"GET"}
        if methods:
            methods |= {"HEAD", "OPTIONS"} if "GET" in methods else {"OPTIONS"}
        return ", ".join(sorted(methods))


def _without_body(send: Send) -> Send:
    async def send_head(message: Message) -> None:
        if message["type"] == "http.response.body":
            message = {**message, "body": b""}
        await send(message)

    return send_head
