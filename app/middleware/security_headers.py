"""SecurityHeaders: CSP without inline script, nosniff, Referrer-Policy, no framing; on the API
docs pages, their one inline script allowed by its hash."""

from __future__ import annotations

import base64
import hashlib
import re

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# No inline script, no plugins, no framing, nothing loaded from elsewhere.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


# /docs starts Swagger UI with an inline script: allowed there (and only there) by its sha256, added
# per response. Still no 'unsafe-inline' script and no framing; ReDoc needs inline styles and a
# blob: worker. Their scripts are the app's own (fastapi-offline, see main.py): no other host.
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
