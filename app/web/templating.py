"""The pages' templates: the Jinja2 environment, its filters and globals (the navigation,
links to routes and static files), `render`, and the notice naming query parameters a page does
not read (`reads` marks those a page reads itself)."""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import urlencode
from weakref import WeakKeyDictionary

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context
from markupsafe import Markup, escape

from app.config import TEMPLATES_DIR
from app.data import spec_in_words, specs_in_words
from app.domain.services import MAX_SAMPLE_DRAWS
from app.lm.search import MAX_EXPANSIONS
from app.serving.pagecache import declared
from app.serving.worker import MODEL_SECONDS
from app.web.static import static_url

templates = Jinja2Templates(directory=TEMPLATES_DIR)
# The templates ship with the app and do not change while it runs: no stat() of every template
# on every render to see whether it did.
templates.env.auto_reload = False

# (key, route name, label) of the main navigation, in order: the one place it is defined.
NAV = [
    ("overview", "show_overview", "Overview"),
    ("bigram", "show_bigram", "Bigram heatmap"),
    ("compare", "compare_bigrams", "Compare bigrams"),
    ("embeddings", "show_embeddings", "Embeddings"),
    ("sample", "sample_page", "Sample"),
    ("score", "score_page", "Score"),
    ("next", "show_next", "Next letter"),
    ("train", "train_page", "Train"),
]


def query(**params: Any) -> str:
    """'?a=1&b=x' from the parameters that have a value ('' when none do)."""
    kept = {k: v for k, v in params.items() if v is not None and v != "" and v is not False}
    return "?" + urlencode(kept) if kept else ""


def fmt_num(v: float | None, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{v:.{digits}f}"


def coord(v: float) -> str:
    """An SVG coordinate, as short as it reads: 62.0 -> '62', 72.08 -> '72.08'."""
    return f"{round(v, 2):g}"


def fmt_prob(p: float) -> str:
    """Probabilities as in the tooltips: 0.0123; very small ones in scientific notation."""
    return f"{p:.4f}" if p >= 1e-4 else f"{p:.2e}"


def ordinal(n: float) -> str:
    """43 -> '43rd', 11 -> '11th' (rounded to a whole number first)."""
    k = round(n) if math.isfinite(n) else 0
    suffix = "th" if 10 <= k % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return f"{k}{suffix}"


def attrs(bounds: dict[str, Any]) -> Markup:
    """HTML attributes from a parameter's bounds (app.domain.params.Params.bounds): min="1"
    max="5"."""
    return Markup(" ".join(f'{escape(k)}="{escape(f"{v:g}" if isinstance(v, float) else v)}"'
                           for k, v in bounds.items()))


@pass_context
def path_for(context: dict, name: str, **path_params: Any) -> str:
    """The path of a named route ('/models/mlp'), for links that survive a moved route.
    A static file's path names its content (`?v=<hash>`: app/web/static.py), so it is cached.

    Remembered per app: a page links dozens of routes, and finding one walks the route table
    (raising NoMatchFound at each route that is not it); the routes do not change once the app
    is built. Neither, while it is served, does a static file; if one were edited, its pages
    would link the old hash until a restart, and the file's response, which hashes the bytes it
    sends, would answer that URL with `no-cache`: never a stale copy kept for a year."""
    app = context["request"].app
    paths = _paths.setdefault(app, {})
    key = (name, tuple(sorted(path_params.items())))
    path = paths.get(key)
    if path is None:
        if name == "static":
            path = static_url(path_params["path"].lstrip("/"))
        else:
            path = str(app.url_path_for(name, **path_params))
        if len(paths) >= MAX_PATHS:  # (parameters are model names and files: few)
            paths.clear()
        paths[key] = path
    return path


_paths: WeakKeyDictionary[FastAPI, dict[tuple, str]] = WeakKeyDictionary()
MAX_PATHS = 4096


templates.env.globals.update(NAV=NAV, query=query, path_for=path_for,
                             # the bounds the pages name when a result stopped at one
                             MODEL_SECONDS=MODEL_SECONDS, MAX_EXPANSIONS=MAX_EXPANSIONS,
                             MAX_SAMPLE_DRAWS=MAX_SAMPLE_DRAWS)
templates.env.filters.update(num=fmt_num, coord=coord, prob=fmt_prob, ordinal=ordinal, attrs=attrs,
                             data_in_words=spec_in_words, all_data_in_words=specs_in_words)


def render(request: Request, name: str, context: dict, status_code: int = 200) -> HTMLResponse:
    """The template filled with `context`, and a notice (base.html) naming the query parameters
    the page does not read, if any."""
    context = {"notice": unknown_params(request), **context}
    return templates.TemplateResponse(request=request, name=name, context=context,
                                      status_code=status_code)


def reads(*params: str, named: tuple[str, ...] = ()):
    """Marks a page route that reads these query parameters itself (from
    request.query_params, beyond its declared arguments), and those it reads only to name them
    in a note of its own as not applied (`named`): neither is an unknown parameter."""
    def mark(route):
        route.reads = (*params, *named)
        route.named = named
        return route
    return mark


def unknown_params(request: Request) -> str | None:
    """A notice naming the query parameters the matched page route does not read (its declared
    query arguments and those it marks with `reads`), instead of ignoring them."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return None  # no page matched (a 404 of an unknown path)
    known = declared(route)
    extra = sorted(set(request.query_params.keys()) - set(known))
    if not extra:
        return None
    applied = [k for k in known if k not in getattr(route.endpoint, "named", ())]
    reads_ = f"it reads {', '.join(applied)}" if applied else "it reads no parameters"
    return (f"Ignored {', '.join(repr(k) for k in extra)}: not a parameter of this page; "
            f"{reads_}.")
