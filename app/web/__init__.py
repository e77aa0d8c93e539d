"""What the JSON API and the HTML pages share: dependencies, templates, and the error handlers.

Both `app.api` and `app.pages` import this module; neither imports the other. Every domain error
has one status, whoever raised it (STATUS); `install(app)` adds one handler per error, which
answers JSON on the API's paths and an HTML error page elsewhere, so the order in which the
routers are included does not matter.

Dependencies are `async def`, though they never await: FastAPI runs a plain `def` dependency in
its thread pool, and a hop there and back costs more than these lookups.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode
from weakref import WeakKeyDictionary

from fastapi import Depends, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context
from markupsafe import Markup, escape
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.config import TEMPLATES_DIR
from app.data import spec_in_words, specs_in_words
from app.domain.params import InvalidParam
from app.domain.services import MAX_SAMPLE_DRAWS, NoTable
from app.lm.search import MAX_EXPANSIONS
from app.lm.vocab import InvalidName
from app.serving.pagecache import declared
from app.serving.worker import MODEL_SECONDS
from app.static import static_url
from app.store.registry import LoadedModel, Registry, UnknownModel

# --- dependencies -------------------------------------------------------------------------------


async def get_registry(request: Request) -> Registry:
    return request.app.state.registry


async def get_model(model: str,
                    registry: Annotated[Registry, Depends(get_registry)]) -> LoadedModel:
    """The `{model}` path parameter resolved to a loaded model (404 listing the available)."""
    return registry.get(model)


RegistryDep = Annotated[Registry, Depends(get_registry)]
ModelDep = Annotated[LoadedModel, Depends(get_model)]


# --- templates ----------------------------------------------------------------------------------

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
]


def query(**params: Any) -> str:
    """'?a=1&b=x' from the parameters that have a value ('' when none do)."""
    kept = {k: v for k, v in params.items() if v is not None and v != "" and v is not False}
    return "?" + urlencode(kept) if kept else ""


def fmt_num(v: float | None, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{v:.{digits}f}"


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
    A static file's path names its content (`?v=<hash>`: app/static.py), so it is cached.

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
templates.env.filters.update(num=fmt_num, prob=fmt_prob, ordinal=ordinal, attrs=attrs,
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


# --- errors -------------------------------------------------------------------------------------

class BadInput(ValueError):
    """A page's query parameter that cannot be used; the message says what to type instead."""


# Every domain error's status, for JSON and HTML alike.
STATUS: dict[type[Exception], int] = {UnknownModel: 404, NoTable: 409, InvalidParam: 422,
                                      InvalidName: 422, BadInput: 422}

# What a user can get wrong; everything else is a bug and is not caught by the pages.
USER_ERRORS = tuple(STATUS)


@dataclass(frozen=True)
class PageError:
    status: int
    message: str
    fix: str


def sentence(text: str) -> str:
    return f"{text[:1].upper()}{text[1:]}{'' if text.endswith('.') else '.'}"


def page_error(exc: Exception, registry: Registry) -> PageError:
    status = STATUS[type(exc)]
    if isinstance(exc, UnknownModel):
        available = ", ".join(registry.names()) or "none"
        return PageError(status, f"There is no model called {exc.name!r}.",
                         f"Pick one of the loaded models: {available}.")
    if isinstance(exc, NoTable):
        return PageError(status, sentence(str(exc)),
                         "Pick a model of the right type from the list.")
    if isinstance(exc, InvalidParam | InvalidName) and "alphabet" in str(exc):
        return PageError(status, sentence(str(exc)),
                         "Use letters of the alphabet only (accents are removed).")
    return PageError(status, str(exc), "Correct the field and submit the form again.")


def error_page(request: Request, err: PageError) -> HTMLResponse:
    """A page of its own for an error that has no form to show it next to."""
    return render(request, "error.html", {"title": "Error", "nav": None, "error": err},
                  err.status)


class SafeJSONResponse(JSONResponse):
    """JSON that survives any input echoed back: a lone surrogate ("\\ud800" in a request) cannot
    be encoded as UTF-8, so such a body is written with ASCII escapes instead of failing."""

    def render(self, content: Any) -> bytes:
        try:
            return super().render(content)
        except UnicodeEncodeError:
            return json.dumps(content, ensure_ascii=True, allow_nan=False,
                              separators=(",", ":")).encode()


def json_safe(value: Any) -> Any:
    """Echoed input made JSON: NaN, Infinity and 1e309 (Python's JSON parser accepts them, JSON
    has no such numbers) become the strings "NaN", "Infinity", "-Infinity"."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def not_json(errors: Sequence[dict[str, Any]]) -> str | None:
    """The parser's complaint when the body is not JSON at all (FastAPI reports it as a
    validation error of type json_invalid), else None."""
    for e in errors:
        if e.get("type") == "json_invalid":
            where = e["loc"][-1] if len(e.get("loc", ())) > 1 else "?"
            why = (e.get("ctx") or {}).get("error", e.get("msg", ""))
            return f"the body is not valid JSON: {why} (at character {where})"
    return None


def is_api(request: Request) -> bool:
    return request.url.path == "/api" or request.url.path.startswith(("/api/", "/docs",
                                                                      "/openapi", "/redoc"))


def where(request: Request) -> str:
    """Where a request's parameters are: the JSON body of a POST, else the query string."""
    return "body" if request.method == "POST" else "query"


def invalid_param_error(request: Request, exc: InvalidParam) -> dict[str, Any]:
    """An InvalidParam as one entry of FastAPI's 422 `detail`, `loc` naming the field."""
    error: dict[str, Any] = {"type": exc.type, "loc": [where(request), *exc.loc],
                             "msg": str(exc), "input": exc.value}
    if exc.ctx:
        error["ctx"] = exc.ctx
    return error


def install(app: FastAPI) -> None:
    """One handler per error, answering JSON on the API's paths and HTML elsewhere."""

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        if is_api(request):
            # FastAPI's own shape, but a body that is not JSON is the 400 the OpenAPI document
            # declares, and the 422 cannot fail on echoed input (NaN, a lone surrogate).
            message = not_json(exc.errors())
            if message is not None:
                return SafeJSONResponse(status_code=400, content={"detail": message})
            return SafeJSONResponse(status_code=422,
                                    content={"detail": json_safe(jsonable_encoder(exc.errors()))})
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}"
                             for e in exc.errors()[:5])
        return error_page(request, PageError(422, f"The address has bad values: {problems}.",
                                             "Correct them and try again."))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if is_api(request):
            return await http_exception_handler(request, exc)
        if exc.status_code == 404:
            err = PageError(404, f"There is no page at {request.url.path}.",
                            "Check the address, or start again from the overview.")
        else:
            err = PageError(exc.status_code, str(exc.detail), "Go back and try again.")
        return error_page(request, err)

    async def domain_error(request: Request, exc: Exception) -> Response:
        if not is_api(request):
            return error_page(request, page_error(exc, request.app.state.registry))
        status = STATUS[type(exc)]
        if isinstance(exc, InvalidParam):
            return SafeJSONResponse(status_code=status,
                                    content={"detail": [invalid_param_error(request, exc)]})
        if isinstance(exc, InvalidName):  # services raise InvalidParam; this is a safety net
            error = {"type": "invalid_name", "loc": [], "msg": str(exc)}
            return SafeJSONResponse(status_code=status, content={"detail": [error]})
        return SafeJSONResponse(status_code=status, content={"detail": str(exc)})

    for exc_type in STATUS:
        app.add_exception_handler(exc_type, domain_error)
