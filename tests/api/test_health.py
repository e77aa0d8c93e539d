import logging
import re

from fastapi.testclient import TestClient

from app.lm import KINDS
from app.main import create_app


def test_healthz(client):
    r = client.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


def test_readyz_lists_the_loaded_models_and_which_are_batched(client):
    r = client.get("/readyz")
    assert r.status_code == 200
    body = r.json()
    assert {k: v for k, v in body.items() if k != "batched"} == {
        "status": "ready", "models": sorted(KINDS), "refused": {}}
    registry = client.app.state.registry
    # What the batcher does, whatever this CPU's kernels make of the models' shapes.
    assert body["batched"] == {
        m.name: {"scoring": m.model.rows_independent,
                 "sampling": m.model.groups_sampling}
        for m in registry.models.values()}


def test_start_up_logs_which_models_are_batched(settings, caplog):
    with caplog.at_level(logging.INFO, logger="namelab"), TestClient(create_app(settings)) as c:
        registry = c.app.state.registry
    lines = [r.getMessage() for r in caplog.records if r.name == "namelab"]
    for m in registry.models.values():
        scoring = "batched" if m.model.rows_independent else "one request at a time"
        assert any(line.startswith(f"model {m.name}: scoring {scoring}, sampling ")
                   for line in lines), lines


def test_start_up_logs_each_models_load_time(settings, caplog):
    with caplog.at_level(logging.INFO, logger="namelab"), TestClient(create_app(settings)) as c:
        names = c.app.state.registry.names()
    lines = [r.getMessage() for r in caplog.records if r.name == "namelab.registry"]
    for name in names:
        assert any(re.fullmatch(rf"loaded model {re.escape(name)} \(\S+\) from .* in \d+\.\d\d s",
                                line) for line in lines), (name, lines)


def test_readyz_is_503_before_the_models_load(settings):
    c = TestClient(create_app(settings))  # no `with`: the lifespan (model loading) never runs
    r = c.get("/readyz")
    assert r.status_code == 503 and "not loaded" in r.json()["detail"]
    assert c.get("/healthz").status_code == 200
