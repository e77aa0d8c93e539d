"""The model thread: every route that touches a model runs on one thread, the loading too."""

from __future__ import annotations

import threading
from typing import Annotated

import pytest
from fastapi import FastAPI, Query
from fastapi.testclient import TestClient

from app import services, worker
from app.lm import scoring
from tests.conftest import forget_pages


def model_thread_ident() -> int:
    return worker.executor().submit(threading.get_ident).result()


def test_a_decorated_route_keeps_its_parameters_and_runs_on_the_model_thread():
    app = FastAPI()

    @app.get("/where")
    @worker.model_thread
    def where(n: Annotated[int, Query(ge=1, le=3)] = 2) -> dict:
        """Says where it ran."""
        if n == 3:
            raise LookupError("three")
        return {"n": n, "thread": threading.get_ident()}

    with TestClient(app, raise_server_exceptions=False) as c:
        assert c.get("/where").json() == {"n": 2, "thread": model_thread_ident()}
        assert c.get("/where?n=9").status_code == 422  # the bound still applies
        assert c.get("/where?n=3").status_code == 500  # errors still propagate
    params = app.openapi()["paths"]["/where"]["get"]["parameters"]
    assert params[0]["name"] == "n" and params[0]["schema"]["maximum"] == 3


def test_async_routes_are_refused():
    async def route() -> None: ...

    with pytest.raises(TypeError, match="sync routes"):
        worker.model_thread(route)


@pytest.mark.parametrize(("method", "path", "body"), [
    ("POST", "/api/models/mlp/sample", {"n": 3, "seed": 1}),
    ("GET", "/api/models/mlp/sample?n=3", None),
    ("POST", "/api/models/mlp/score", {"names": ["emma"]}),
    ("GET", "/api/models/bigram/score?name=emma", None),
    ("GET", "/api/compare?name=emma", None),
    ("GET", "/api/models/mlp/top?k=3", None),
    ("GET", "/sample?model=mlp&n=3", None),
    ("GET", "/score?names=emma", None),
    ("GET", "/", None),
])
def test_model_work_of_the_app_runs_on_the_model_thread(client, monkeypatch, method, path, body):
    seen: set[int] = set()

    def spy(fn):
        def wrapped(*args, **kwargs):
            seen.add(threading.get_ident())
            return fn(*args, **kwargs)
        return wrapped

    monkeypatch.setattr(scoring, "_step_log_probs", spy(scoring._step_log_probs))
    monkeypatch.setattr(services, "drive_steps", spy(services.drive_steps))
    monkeypatch.setattr(services, "most_probable", spy(services.most_probable))
    # the kept search of the model's best names (read, or searched on first use)
    monkeypatch.setattr(services, "most_probable_of", spy(services.most_probable_of))
    forget_pages(client.app)  # a score read by GET may be a cached page from an earlier test
    assert client.request(method, path, json=body).status_code == 200
    assert seen == {model_thread_ident()}


def test_the_models_are_loaded_on_the_model_thread(settings, monkeypatch):
    from app import main

    seen = []
    load = main.load_registry
    monkeypatch.setattr(main, "load_registry",
                        lambda s: seen.append(threading.get_ident()) or load(s))
    with TestClient(main.create_app(settings)) as c:
        assert c.get("/readyz").status_code == 200
    assert seen == [model_thread_ident()]


def test_a_model_thread_route_runs_under_the_request_deadline(monkeypatch):
    from app.lm import deadline as deadlines

    monkeypatch.setattr(worker, "MODEL_SECONDS", 0.25)
    app = FastAPI()

    @app.get("/budget")
    @worker.model_thread
    def budget() -> dict:
        d = deadlines.current()
        return {"left": d.at - d.clock()}

    with TestClient(app) as c:
        assert 0 < c.get("/budget").json()["left"] <= 0.25
    assert deadlines.current() is None  # nothing leaks out of the request
