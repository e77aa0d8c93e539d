"""Server-rendered HTML pages (Jinja2 templates from templates/, SVG plots from app/plots.py).

Every page works without JavaScript: forms use GET, so every result has a shareable URL.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.pages import bigram, embeddings, models, overview, sample, score
from app.pages.common import PageError, error_page

ROUTERS = (overview, bigram, embeddings, sample, score, models)


def is_api(request: Request) -> bool:
    return request.url.path == "/api" or request.url.path.startswith(("/api/", "/docs",
                                                                      "/openapi", "/redoc"))


def install(app: FastAPI) -> None:
    for module in ROUTERS:
        app.include_router(module.router, include_in_schema=False)

    # HTML error pages for the pages; the API's paths keep whatever JSON handler they had.
    json_http = app.exception_handlers.get(StarletteHTTPException, http_exception_handler)
    json_invalid = app.exception_handlers.get(RequestValidationError,
                                              request_validation_exception_handler)

    @app.exception_handler(StarletteHTTPException)
    async def html_http_error(request: Request, exc: StarletteHTTPException):
        if is_api(request):
            return await json_http(request, exc)
        if exc.status_code == 404:
            err = PageError(404, f"There is no page at {request.url.path}.",
                            "Check the address, or start again from the overview.")
        else:
            err = PageError(exc.status_code, str(exc.detail), "Go back and try again.")
        return error_page(request, err)

    @app.exception_handler(RequestValidationError)
    async def html_invalid_request(request: Request, exc: RequestValidationError):
        if is_api(request):
            return await json_invalid(request, exc)
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}"
                             for e in exc.errors()[:5])
        return error_page(request, PageError(400, f"The address has bad values: {problems}.",
                                             "Correct them and try again."))
