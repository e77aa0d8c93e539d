"""Pages and tables that are the same for every visitor, rendered once per set of loaded models.

The heatmap of a loaded model, an embedding plot, the CSV/JSON downloads, the API's tables and
the scores of names (the score page, `/api/compare`, `GET .../score?name=`), the next-letter
distribution and the attention weights (`GET .../next`, `.../attention`) depend on nothing
but the URL and the loaded models (they draw no random numbers, read no header, and scoring has
no deadline). `PageCache`, an ASGI middleware just outside the routes, keeps the bytes of their
200 responses (not one that says `Cache-Control: no-store`), keyed by path and query string,
and serves them again without running the route (no model-thread hop, no template rendering).
POST requests are never cached.

Every response of such a URL carries a strong `ETag` (a hash of its bytes) and
`Cache-Control: no-cache` (a browser keeps it but asks again each time), and a request whose
`If-None-Match` names the current ETag gets a 304 without a body.

Invalidation does not trust any counter: the cache remembers the very `LoadedModel` objects it
was filled with (strong references, so their identities cannot be reused) and drops everything
the moment the app's registry holds a different set of objects, whatever the names: a model
added, removed or replaced while the server runs (app/serving/reloading.py) empties it, and a
page rendered while the models changed is sent but not kept. A loaded model never changes in
place: it is frozen at load and serving only reads it (app/lm/base.py).

The cache is bounded in bytes, every byte it keeps counted (the key, the headers, the body and
an allowance for the objects holding them), and evicts the least recently used pages. Its key
is normalised: the path and the query's parameters sorted by name (the values of a repeated
one in their order), and a URL with a parameter its route does not declare (a FastAPI query
parameter, or a field of the parameters model it takes) is served but never kept: padding in
a query cannot make distinct entries, and what is kept is bounded by the routes' own bounds.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode

from pydantic import BaseModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.serving.routes import flat_routes, path_regex

NOT_KEPT = b"no-store"  # a 200 answer whose Cache-Control says so is sent on, not kept
MAX_BYTES = 32 * 2**20  # bodies kept, in all
CACHE_CONTROL = b"no-cache"  # keep it, but revalidate (the models can change at any time)
ENTRY_BYTES = 512  # an entry's objects beyond its bytes (the Page, its lists, tuples, dict slot)


@dataclass(frozen=True)
class Page:
    status: int
    headers: list[tuple[bytes, bytes]]  # with ETag and Cache-Control
    body: bytes
    etag: bytes

    def size(self, key: tuple[str, bytes]) -> int:
        """Every byte it keeps, with its key's."""
        return (len(key[0]) + len(key[1]) + len(self.body) + len(self.etag) + ENTRY_BYTES
                + sum(len(k) + len(v) for k, v in self.headers))


def cacheable(endpoint: Callable) -> Callable:
    """Marks a GET route whose answer depends only on its URL and the loaded models: the page
    cache may keep it. Not /top nor the model card page (its top names): their search stops at
    the request's model-time deadline (app/serving/worker.py), so their answer can depend on the
    load of the moment; nor sampling, which draws a new seed when none is given. A marked route
    whose answer could not be complete says `Cache-Control: no-store` (NOT_KEPT): the
    next-letter page does when the deadline cut its search (bounded by a count, app/lm/search.py)
    short. Put it right under the route's decorator, so it marks the function the route runs."""
    endpoint.cacheable = True
    return endpoint


def cacheable_paths(routes: list) -> list[re.Pattern]:
    """The path patterns of the app's GET routes marked `cacheable`."""
    return [path_regex(path) for path, methods, route in flat_routes(routes)
            if path is not None and "GET" in (methods or ())
            and getattr(getattr(route, "endpoint", None), "cacheable", False)]


def normalised(query: bytes) -> tuple[bytes, set[str]]:
    """The query with its parameters sorted by name (stable: a repeated one's values keep
    their order), and their names."""
    pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
    pairs.sort(key=lambda kv: kv[0])
    return urlencode(pairs).encode("latin-1"), {k for k, _ in pairs}


def declared(route) -> list[str] | None:
    """The query parameters a FastAPI route reads, in the order it declares them: its
    arguments' (a parameters model: its fields) and those it marks with `templating.reads` (read
    from request.query_params); None when it is not such a route. The page cache keeps only pages
    whose parameters are all declared, and the pages name the others (templating.unknown_params)."""
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return None
    names: list[str] = []
    todo = [dependant]
    while todo:
        d = todo.pop(0)
        todo.extend(d.dependencies)
        for p in d.query_params:
            kind = getattr(p.field_info, "annotation", None)
            if isinstance(kind, type) and issubclass(kind, BaseModel):
                names.extend(f.alias or n for n, f in kind.model_fields.items())
            else:
                names.append(p.alias)
    names.extend(getattr(route.endpoint, "reads", ()))
    return list(dict.fromkeys(names))


def etag_of(body: bytes) -> bytes:
    return b'"' + hashlib.blake2b(body, digest_size=16).hexdigest().encode() + b'"'


def matches(if_none_match: bytes, etag: bytes) -> bool:
    """RFC 9110 If-None-Match: '*' or a list of tags, compared weakly (W/ ignored)."""
    tags = [t.strip().removeprefix(b"W/") for t in if_none_match.split(b",")]
    return b"*" in tags or etag in tags


class PageCache:
    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BYTES) -> None:
        self.app, self.max_bytes = app, max_bytes
        self.pages: OrderedDict[tuple[str, bytes], Page] = OrderedDict()
        self.sizes: dict[tuple[str, bytes], int] = {}
        self.size = 0  # every byte kept (Page.size)
        self.models: dict[str, object] = {}  # what the pages were rendered from
        self.hits = self.misses = 0
        self.paths: list[re.Pattern] | None = None  # the cacheable routes', read at first use

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET":
            return await self.app(scope, receive, send)
        if self.paths is None:  # the routes are all included before the first request
            self.paths = cacheable_paths(scope["app"].router.routes)
        if not any(p.match(scope["path"]) for p in self.paths):
            return await self.app(scope, receive, send)
        registry = getattr(scope["app"].state, "registry", None)
        if registry is None:  # not started yet
            return await self.app(scope, receive, send)
        models = registry.models  # never changed in place once served (Registry)
        self._follow(models)
        query, names = normalised(scope["query_string"])
        key = (scope["path"], query)
        page = self.pages.get(key)
        if page is None:
            self.misses += 1
            page = await self._render(scope, receive, send)
            if page is None:  # not a 200: already sent as it was
                return
            known = declared(scope.get("route"))  # the router notes the route it ran
            # kept only if the models did not change while it was rendered: a page of a model
            # replaced meanwhile (app/serving/reloading.py) is sent, never kept for others
            if known is not None and names <= set(known) and registry.models is models:
                self._store(key, page)
        else:
            self.hits += 1
            self.pages.move_to_end(key)
        await self._send(scope, page, send)

    def _follow(self, models: dict[str, object]) -> None:
        """Drop every page if the registry's models are not exactly the ones cached from."""
        same = len(models) == len(self.models) and all(
            models.get(name) is m for name, m in self.models.items())
        if not same:
            self.clear()
            self.models = dict(models)

    def clear(self) -> None:
        self.pages.clear()
        self.sizes.clear()
        self.size = 0

    async def _render(self, scope: Scope, receive: Receive, send: Send) -> Page | None:
        """Run the route and keep its whole answer; a non-200 answer is sent on as it comes."""
        start: Message | None = None
        chunks: list[bytes] = []
        passing = False

        async def capture(message: Message) -> None:
            nonlocal start, passing
            if message["type"] == "http.response.start":
                start = message
                passing = message["status"] != 200 or any(
                    k.lower() == b"cache-control" and NOT_KEPT in v.lower()
                    for k, v in message.get("headers", []))
            if passing:
                return await send(message)
            if message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        if start is None or passing:
            return None
        body = b"".join(chunks)
        etag = etag_of(body)
        headers = [(k, v) for k, v in start.get("headers", [])
                   if k.lower() not in (b"etag", b"cache-control")]
        headers += [(b"etag", etag), (b"cache-control", CACHE_CONTROL)]
        return Page(200, headers, body, etag)

    def _store(self, key: tuple[str, bytes], page: Page) -> None:
        size = page.size(key)
        if size > self.max_bytes:
            return
        if self.pages.pop(key, None) is not None:
            self.size -= self.sizes.pop(key)
        self.pages[key], self.sizes[key] = page, size
        self.size += size
        while self.size > self.max_bytes:
            evicted, _ = self.pages.popitem(last=False)
            self.size -= self.sizes.pop(evicted)

    @staticmethod
    async def _send(scope: Scope, page: Page, send: Send) -> None:
        condition = dict(scope["headers"]).get(b"if-none-match")
        if condition is not None and matches(condition, page.etag):
            headers = [(k, v) for k, v in page.headers
                       if k in (b"etag", b"cache-control")]
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        await send({"type": "http.response.start", "status": page.status,
                    "headers": page.headers})
        await send({"type": "http.response.body", "body": page.body})
