"""The OpenAPI document: operation IDs that are the route functions' names, and the refusals
answered before any route runs (400, 413, 429) written into every operation they apply to."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.routing import APIRoute

from app.config import Settings
from app.middleware.rate_limit import NOT_LIMITED

# FastAPI's /docs (Swagger UI) and /redoc, served with their scripts from this app (main.py).
DOCS_URL, REDOC_URL = "/docs", "/redoc"


def operation_id(route: APIRoute) -> str:
    """Operation IDs are the route functions' names: a client generated from /openapi.json
    calls sample_names(...), not sample_names_api_models__model__sample_post(...)."""
    return route.name


ERROR_BODY = {"application/json": {"schema": {
    "type": "object", "required": ["detail"], "properties": {"detail": {"type": "string"}}}}}


def document_refusals(app: FastAPI, settings: Settings) -> None:
    """Put what is answered before any route runs into the API's own OpenAPI document: 400
    (unparseable body) and 413 for operations with a body, 429 when rate limiting is on."""
    build = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            for path, item in build()["paths"].items():
                for op in item.values():
                    extra = {}
                    if "requestBody" in op:
                        extra["400"] = "The body is not valid JSON."
                        extra["413"] = f"The body is over {settings.max_body_bytes} bytes."
                    if settings.rate_limit_per_minute and path not in NOT_LIMITED:
                        extra["429"] = "Too many requests from this client; see Retry-After."
                    for code, text in extra.items():
                        op["responses"].setdefault(code, {"description": text,
                                                          "content": ERROR_BODY})
        return app.openapi_schema

    app.openapi = openapi
