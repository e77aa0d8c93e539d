"""The error handlers of the JSON API and the pages. Every domain error has one status, whoever
raised it (STATUS); `install(app)` adds one handler per error, which answers JSON on the API's
paths and an HTML error page elsewhere, so the order in which the routers are included does not
matter."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.domain.params import InvalidParam
from app.domain.services import NoTable
from app.domain.training import TrainingOff
from app.lm.vocab import InvalidName
from app.store.jobinput import BadJobInput, TooMuchData
from app.store.registry import (
    NoModelLoaded,
    Registry,
    ShippedModel,
    TooManyUserModels,
    UnknownModel,
)
from app.store.runner import NameTaken, QueueFull, UnknownJob
from app.web.templating import render


class BadInput(ValueError):
    """A page's query parameter that cannot be used; the message says what to type instead."""


# Every domain error's status, for JSON and HTML alike.
STATUS: dict[type[Exception], int] = {UnknownModel: 404, NoTable: 409, InvalidParam: 422,
                                      InvalidName: 422, BadInput: 422, ShippedModel: 403,
                                      TooManyUserModels: 409, NoModelLoaded: 503}
# Training jobs' (app/domain/training.py, app/store/jobinput.py and runner.py).
STATUS |= {BadJobInput: 422, TooMuchData: 413, NameTaken: 409, QueueFull: 429, UnknownJob: 404,
           TrainingOff: 503}

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
    if isinstance(exc, NoModelLoaded):
        return PageError(status, sentence(str(exc)),
                         "Try again in a moment, or tell the server's operator.")
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
        if isinstance(exc, TooManyUserModels):  # what to delete, as a list too
            return SafeJSONResponse(status_code=status, content={"detail": str(exc),
                                                                 "user_models": exc.names})
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, QueueFull) else None
        return SafeJSONResponse(status_code=status, content={"detail": str(exc)}, headers=headers)

    for exc_type in STATUS:
        app.add_exception_handler(exc_type, domain_error)
