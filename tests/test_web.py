"""The shared web layer (app/web/): one status per domain error for JSON and HTML, whatever
the order in which the API, the pages and the handlers are installed."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi.testclient import TestClient

from app import api, pages
from app.config import STATIC_DIR
from app.web import errors

APP = Path(__file__).resolve().parents[1] / "app"


def imported(package: str) -> set[str]:
    """Every module imported by the modules of app/<package>/."""
    names = set()
    for path in (APP / package).glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
    return names


def test_api_and_pages_do_not_import_each_other():
    assert not {m for m in imported("api") if m.startswith("app.pages")}
    assert not {m for m in imported("pages") if m.startswith("app.api")}


# (url, status, JSON or HTML): one status per error, the format by the path.
EXPECTED = [
    ("/api/models/nope", 404, "application/json"),
    ("/models/nope", 404, "text/html"),
    ("/api/models/mlp/bigram", 409, "application/json"),
    ("/bigram?model=mlp", 409, "text/html"),
    ("/api/models/bigram/sample?prefix=r2", 422, "application/json"),
    ("/sample?model=bigram&prefix=r2", 422, "text/html"),
    ("/api/models/bigram/sample?n=0", 422, "application/json"),
    ("/sample?model=bigram&n=0", 422, "text/html"),
    ("/api/nowhere", 404, "application/json"),
    ("/nowhere", 404, "text/html"),
]


@pytest.mark.parametrize("order", ["api, pages, errors", "errors, pages, api",
                                   "pages, errors, api"])
def test_install_order_does_not_matter(client, order):
    app = FastAPI()
    app.state.registry = client.app.state.registry
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    for name in order.split(", "):
        {"api": api, "pages": pages, "errors": errors}[name].install(app)
    with TestClient(app) as c:
        for url, status, media in EXPECTED:
            r = c.get(url)
            assert (r.status_code, r.headers["content-type"].split(";")[0]) == (status, media), url
