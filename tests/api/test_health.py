from fastapi.testclient import TestClient

from app.lm import KINDS
from app.main import create_app


def test_healthz(client):
    r = client.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


def test_readyz_lists_the_loaded_models(client):
    r = client.get("/readyz")
    assert r.status_code == 200
    assert r.json() == {"status": "ready", "models": sorted(KINDS),
                        "refused": {}}


def test_readyz_is_503_before_the_models_load(settings):
    c = TestClient(create_app(settings))  # no `with`: the lifespan (model loading) never runs
    r = c.get("/readyz")
    assert r.status_code == 503 and "not loaded" in r.json()["detail"]
    assert c.get("/healthz").status_code == 200
