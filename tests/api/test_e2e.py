"""End to end: a real uvicorn on a free loopback port, talked to over TCP with httpx."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(models_dir, tmp_path_factory):
    port = free_port()
    log_path = tmp_path_factory.mktemp("server") / "uvicorn.log"
    log = log_path.open("w")  # a file, not a pipe: a full pipe would block the server
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
         "--models-dir", str(models_dir)],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"server exited with {proc.returncode}: {log_path.read_text()}")
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("server not ready within 60 s")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_sample_and_score_over_http(server):
    with httpx.Client(base_url=server, timeout=30) as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        assert http.get("/readyz").json()["models"] == ["bigram", "mlp", "neural-bigram"]

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
