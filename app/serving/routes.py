"""An app's routes flattened: every route with its full path and methods, those of included
routers too, and the pattern of a path. What the middleware that answers for the routes (the
methods a path allows, the pages the cache may keep) reads from the app."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator

from starlette.routing import BaseRoute, compile_path


def flat_routes(routes: list[BaseRoute]) -> Iterator[tuple[str | None, set[str] | None,
                                                             BaseRoute]]:
    """(full path, methods, route) of every route, those of included routers too (recent
    FastAPI keeps an included router as one nested route; older ones copied its routes)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # FastAPI before nested routers
        for route in routes:
            yield getattr(route, "path", None), getattr(route, "methods", None), route
        return
    for ctx in iter_route_contexts(routes):
        yield ctx.path, ctx.methods, ctx.original_route


@functools.lru_cache(maxsize=256)
def path_regex(path: str) -> re.Pattern:
    return compile_path(path)[0]
