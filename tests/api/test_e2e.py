"""End to end: a real uvicorn on a free loopback port, talked to over TCP with httpx."""

from __future__ import annotations

import httpx
import pytest

from app.lm import KINDS
from tests.live import live_server


@pytest.fixture(scope="module")
def server(models_dir):
    with live_server(models_dir, cli=True) as url:  # `namelab serve`, as a user starts it
        yield url


def test_sample_and_score_over_http(server):
    with httpx.Client(base_url=server, timeout=30) as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        assert http.get("/readyz").json()["models"] == sorted(KINDS)

        r = http.post("/api/models/mlp/sample", json={"n": 5, "seed": 42})
        assert r.status_code == 200 and r.headers["content-type"] == "application/json"
        body = r.json()
        assert body["seed"] == 42 and len(body["names"]) == 5
        again = http.get("/api/models/mlp/sample", params={"n": 5, "seed": 42}).json()
        assert again == body

        names = [x["name"] for x in body["names"]]
        scored = http.post("/api/models/mlp/score", json={"names": names}).json()
        assert [x["log_prob"] for x in scored["results"]] == pytest.approx(
            [x["log_prob"] for x in body["names"]])

        r = http.post("/api/models/mlp/score", json={"names": ["r2d2"]})
        assert r.status_code == 422 and "'2'" in r.text
        r = http.get("/api/models/gpt/top")
        assert r.status_code == 404 and "available models" in r.json()["detail"]
