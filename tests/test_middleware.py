"""app/middleware/: security headers, body limit, CORS, rate limit, errors, logs, metrics."""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import hashlib
import json
import logging
import re

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from app.main import create_app
from app.middleware.rate_limit import RateLimit

SECRET = "the database password is hunter2"


def build(settings, **overrides) -> FastAPI:
    """The real app, with two extra routes: /test/echo reads the body, /test/boom raises."""
    app = create_app(settings.model_copy(update=overrides))
    app.state.echoed = []

    @app.post("/test/echo")
    async def echo(request: Request) -> dict:
        body = await request.body()
        app.state.echoed.append(len(body))
        return {"length": len(body), "sha256": hashlib.sha256(body).hexdigest()}

    @app.get("/test/boom")
    def boom() -> dict:
        raise RuntimeError(SECRET)

    return app


@pytest.fixture(scope="module")
def app(settings) -> FastAPI:
    return build(settings, max_body_bytes=100)


@pytest.fixture(scope="module")
def client(app):
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


# --- security headers ------------------------------------------------------------------------


def csp_directives(response) -> dict[str, str]:
    policy = response.headers["content-security-policy"]
    return {d.split()[0]: d.split(None, 1)[1] if " " in d else ""
            for d in (part.strip() for part in policy.split(";")) if d}


def assert_secure(response) -> None:
    csp = csp_directives(response)
    assert csp["script-src"] == "'self'", csp  # no 'unsafe-inline', nothing from elsewhere
    assert csp["default-src"] == "'self'"
    assert csp["frame-ancestors"] == "'none'"
    assert csp["object-src"] == "'none'"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-frame-options"] == "DENY"


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/healthz", 200),
        ("GET", "/api/models", 200),
        ("GET", "/openapi.json", 200),
        ("GET", "/metrics", 200),
        ("GET", "/no/such/page", 404),
        ("DELETE", "/api/models", 405),
        ("GET", "/test/boom", 500),
        ("GET", "/static/../app/config.py", 404),
    ],
)
def test_every_response_has_the_security_headers(client, method, path, status):
    response = client.request(method, path)
    assert response.status_code == status
    assert_secure(response)


def test_refusals_have_the_security_headers_too(client, settings):
    assert_secure(client.post("/test/echo", content=b"x" * 101))  # 413
    with TestClient(build(settings, rate_limit_per_minute=1)) as limited:
        limited.get("/api/models")
        response = limited.get("/api/models")
    assert response.status_code == 429
    assert_secure(response)


def test_docs_allow_only_their_own_inline_script_by_hash(client):
    response = client.get("/docs")
    assert response.status_code == 200
    scripts = re.findall(r"<script>(.*?)</script>", response.text, re.DOTALL)
    assert len(scripts) == 1  # FastAPI's Swagger UI starter
    digest = base64.b64encode(hashlib.sha256(scripts[0].encode()).digest()).decode()
    csp = csp_directives(response)
    assert csp["script-src"] == f"'self' 'sha256-{digest}'"  # and no other host
    assert csp["frame-ancestors"] == "'none'"
    assert response.headers["x-content-type-options"] == "nosniff"


def test_redoc_gets_the_docs_policy_without_inline_script(client):
    response = client.get("/redoc")
    assert response.status_code == 200
    csp = csp_directives(response)
    assert "unsafe-inline" not in csp["script-src"]
    assert csp["frame-ancestors"] == "'none'"


INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)
INLINE_HANDLER = re.compile(r"<[^>]+\son[a-z]+\s*=", re.IGNORECASE)
JS_URL = re.compile(r"(href|src|action)\s*=\s*[\"']?\s*javascript:", re.IGNORECASE)


def html_pages(models: list[str]) -> list[str]:
    """Every page route (a {model} page for each model), some with results, an error page."""
    from app.pages import ROUTERS

    paths = []
    for module in ROUTERS:
        for route in module.router.routes:
            if "GET" in route.methods:
                paths += [route.path.replace("{model}", m) for m in models]
    paths = list(dict.fromkeys(paths))
    return [*paths, "/score?names=emma%2Cxqzvk", "/sample?n=5&seed=1", "/bigram?view=counts",
            "/no/such/page"]


def test_no_page_has_inline_script(client):
    """The CSP would block it, so it must not be there: scripts live in static/."""
    models = [m["name"] for m in client.get("/api/models").json()]
    checked = 0
    for path in html_pages(models):
        response = client.get(path)
        assert_secure(response)
        if not response.headers.get("content-type", "").startswith("text/html"):
            continue
        checked += 1
        assert not INLINE_SCRIPT.search(response.text), path
        assert not INLINE_HANDLER.search(response.text), path
        assert not JS_URL.search(response.text), path
        assert "<style" not in response.text and " style=" not in response.text, path
    assert checked >= 8


def test_no_traceback_leaves_the_server(client, caplog):
    with caplog.at_level(logging.ERROR, logger="namelab.http"):
        response = client.get("/test/boom")
    assert response.status_code == 500
    assert response.json() == {"detail": "internal server error"}
    assert SECRET not in response.text and "Traceback" not in response.text
    assert SECRET in caplog.text and "Traceback" in caplog.text  # the log keeps the details


# --- body limit ------------------------------------------------------------------------------


def chunks(n: int, size: int = 7):
    data = bytes(i % 251 for i in range(n))
    for i in range(0, n, size):
        yield data[i : i + size]


def test_default_body_limit_admits_the_largest_documented_request(settings):
    """1,000 names of 64 characters, each character the longest JSON can write one in."""
    from app.domain.params import MAX_SCORE
    from app.lm.vocab import MAX_NAME_LEN

    worst = json.dumps({"names": ["\U0001f600" * MAX_NAME_LEN] * MAX_SCORE},
                       separators=(",", ":"), ensure_ascii=True)
    assert len(worst) == 771_011
    assert settings.max_body_bytes == 2**20 >= len(worst)


def test_body_at_the_limit_passes(client):
    body = b"a" * 100
    response = client.post("/test/echo", content=body)
    assert response.status_code == 200
    assert response.json()["length"] == 100


def test_body_over_the_limit_gets_413_before_the_app_reads_it(client, app):
    before = list(app.state.echoed)
    response = client.post("/test/echo", content=b"a" * 101)
    assert response.status_code == 413
    assert "limit is 100 bytes" in response.json()["detail"]
    assert app.state.echoed == before  # the route never ran


def test_chunked_body_over_the_limit_gets_413(client, app):
    before = list(app.state.echoed)
    response = client.post("/test/echo", content=chunks(1000))  # no Content-Length
    assert response.status_code == 413
    assert app.state.echoed == before


def test_chunked_body_under_the_limit_reaches_the_app_intact(client):
    data = b"".join(chunks(100))
    response = client.post("/test/echo", content=chunks(100))
    assert response.status_code == 200
    assert response.json() == {"length": 100, "sha256": hashlib.sha256(data).hexdigest()}


def test_huge_json_to_a_real_endpoint_gets_413_not_422(settings):
    with TestClient(create_app(settings)) as c:
        names = ["emma"] * 150_000  # ~1.2 MB of JSON
        response = c.post("/api/models/bigram/score", json={"names": names})
    assert response.status_code == 413


def run(coro):
    """asyncio.run in a thread of its own: the browser tests' Playwright keeps an event loop
    running in the main thread for the whole session."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def run_asgi(app, scope_headers: list[tuple[bytes, bytes]], messages: list[dict]) -> list[dict]:
    """Call an ASGI app directly (for what a well-behaved HTTP client cannot send)."""
    scope = {"type": "http", "method": "POST", "path": "/test/echo", "headers": scope_headers,
             "query_string": b"", "client": ("127.0.0.1", 1), "server": ("test", 80),
             "scheme": "http", "root_path": "", "http_version": "1.1", "app": app}
    sent: list[dict] = []
    pending = list(messages)

    async def receive():
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    run(app(scope, receive, send))
    return sent


def test_invalid_content_length_gets_400(app):
    from app.middleware.body_limit import BodyLimit

    async def never(scope, receive, send):
        raise AssertionError("the app must not be called")

    sent = run_asgi(BodyLimit(never, max_bytes=100), [(b"content-length", b"12abc")], [])
    assert sent[0]["status"] == 400


# --- CORS --------------------------------------------------------------------------------------


def test_no_cors_by_default(client):
    response = client.get("/api/models", headers={"Origin": "https://elsewhere.example"})
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers
    preflight = client.options("/api/models", headers={
        "Origin": "https://elsewhere.example", "Access-Control-Request-Method": "GET"})
    assert "access-control-allow-origin" not in preflight.headers


def test_cors_only_for_the_configured_origins(settings):
    with TestClient(build(settings, cors_origins=["https://good.example"])) as c:
        good = c.get("/api/models", headers={"Origin": "https://good.example"})
        bad = c.get("/api/models", headers={"Origin": "https://evil.example"})
        preflight = c.options("/api/models", headers={
            "Origin": "https://good.example", "Access-Control-Request-Method": "GET"})
    assert good.headers["access-control-allow-origin"] == "https://good.example"
    assert "access-control-allow-origin" not in bad.headers
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://good.example"


def test_cors_origins_from_the_environment(monkeypatch):
    from app.config import Settings

    monkeypatch.setenv("NAMELAB_CORS_ORIGINS", "https://a.example, https://b.example")
    assert Settings().cors_origins == ["https://a.example", "https://b.example"]


# --- rate limit ------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def ok_app(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def test_rate_limit_is_off_by_default(client, settings):
    assert settings.rate_limit_per_minute == 0
    statuses = {client.get("/healthz").status_code for _ in range(50)}
    statuses |= {client.get("/api/models").status_code for _ in range(50)}
    assert statuses == {200}


def test_rate_limit_refuses_past_the_budget_and_refills(settings):
    clock = Clock()
    app = FastAPI()
    app.add_api_route("/x", lambda: {"ok": True})
    app.add_api_route("/healthz", lambda: {"ok": True})
    app.add_middleware(RateLimit, per_minute=3, clock=clock)
    with TestClient(app) as c:
        assert [c.get("/x").status_code for _ in range(4)] == [200, 200, 200, 429]
        refused = c.get("/x")
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "20"  # one request per 20 s at 3/minute
        assert "too many requests" in refused.json()["detail"]
        assert c.get("/healthz").status_code == 200  # probes are never limited
        clock.now += 20
        assert [c.get("/x").status_code for _ in range(2)] == [200, 429]
        clock.now += 3600
        assert [c.get("/x").status_code for _ in range(4)] == [200, 200, 200, 429]


def test_rate_limit_is_per_client():
    clock = Clock()
    limiter = RateLimit(ok_app, per_minute=1, clock=clock)

    def status(ip: str) -> int:
        scope = {"type": "http", "method": "GET", "path": "/x", "headers": [],
                 "client": (ip, 1)}
        sent = []

        async def send(m):
            sent.append(m)

        run(limiter(scope, None, send))
        return sent[0]["status"]

    assert [status("10.0.0.1"), status("10.0.0.1"), status("10.0.0.2")] == [200, 429, 200]


def test_rate_limit_memory_is_bounded():
    clock = Clock()
    limiter = RateLimit(ok_app, per_minute=60, clock=clock)
    limiter.MAX_CLIENTS = 100

    async def send(m):
        pass

    async def hammer():
        for i in range(1000):
            clock.now += 0.5
            await limiter({"type": "http", "method": "GET", "path": "/x", "headers": [],
                           "client": (f"10.0.{i // 250}.{i % 250}", 1)}, None, send)

    run(hammer())
    assert len(limiter.buckets) <= 101


def test_rate_limit_from_settings(settings):
    with TestClient(build(settings, rate_limit_per_minute=2)) as c:
        statuses = [c.get("/api/models").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]


# --- request log and metrics -----------------------------------------------------------------


def test_every_request_is_logged_with_method_path_status_and_duration(client, caplog):
    with caplog.at_level(logging.INFO, logger="namelab.access"):
        client.get("/api/models?secret=1")
        client.post("/test/echo", content=b"x" * 500)
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "namelab.access"]
    assert [(x["method"], x["path"], x["status"]) for x in lines] == [
        ("GET", "/api/models", 200), ("POST", "/test/echo", 413)]
    assert all(x["duration_ms"] >= 0 for x in lines)
    assert all(x["client"] == "testclient" for x in lines)


def test_metrics_are_prometheus_text(client):
    client.get("/api/models")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert re.search(r'http_requests_total\{handler="/api/models",method="GET",status="2xx"\} '
                     r'[1-9]', text)
    assert "http_request_duration_seconds_bucket" in text
    assert "process_resident_memory_bytes" in text
    assert "/metrics" not in client.get("/openapi.json").json()["paths"]


def test_two_apps_in_one_process_do_not_clash(settings):
    """Each app has its own metrics registry (prometheus_client's default one is global)."""
    for _ in range(2):
        with TestClient(create_app(settings)) as c:
            assert c.get("/metrics").status_code == 200


def test_the_openapi_document_declares_the_refusals(client, settings):
    paths = client.get("/openapi.json").json()["paths"]
    assert {"400", "413"} <= set(paths["/api/models/{model}/score"]["post"]["responses"])
    assert "413" not in paths["/api/compare"]["get"]["responses"]  # no body, nothing to refuse
    assert "429" not in paths["/api/compare"]["get"]["responses"]  # rate limit off
    with TestClient(build(settings, rate_limit_per_minute=60)) as c:
        paths = c.get("/openapi.json").json()["paths"]
    assert "429" in paths["/api/compare"]["get"]["responses"]
    assert "429" not in paths["/healthz"]["get"]["responses"]


# --- methods: HEAD, OPTIONS, Allow -------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/models", "/api/models/bigram/sample?n=2&seed=1",
                                  "/", "/bigram?model=bigram", "/static/style.css", "/healthz",
                                  "/bigram/table.csv?model=bigram"])
def test_head_on_a_get_route_is_the_get_without_its_body(client, path):
    get, head = client.get(path), client.head(path)
    assert get.status_code == head.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"] == get.headers["content-type"]
    assert "content-security-policy" in head.headers
    if "sample" not in path and path != "/":  # fresh names on every call
        assert head.headers["content-length"] == get.headers["content-length"]


@pytest.mark.parametrize(("path", "allow"), [
    ("/api/models/bigram/sample", "GET, HEAD, OPTIONS, POST"),
    ("/api/models/bigram/score", "GET, HEAD, OPTIONS, POST"),
    ("/api/models", "GET, HEAD, OPTIONS"),
    ("/test/echo", "OPTIONS, POST"),
    ("/sample", "GET, HEAD, OPTIONS"),
])
def test_options_and_405_name_every_method_of_the_path(client, path, allow):
    r = client.options(path)
    assert r.status_code == 204 and r.headers["allow"] == allow
    r = client.request("PATCH", path)
    assert r.status_code == 405 and r.headers["allow"] == allow
    if "GET" not in allow:
        r = client.head(path)
        assert r.status_code == 405 and r.headers["allow"] == allow and r.content == b""


def test_a_page_405_is_the_html_error_page_with_allow(client):
    r = client.delete("/sample")
    assert r.status_code == 405 and r.headers["content-type"].startswith("text/html")
    assert r.headers["allow"] == "GET, HEAD, OPTIONS"


def test_options_on_an_unknown_path_is_404(client):
    assert client.options("/no/such/page").status_code == 404


def test_a_cors_preflight_is_still_answered_by_cors(settings):
    app = create_app(settings.model_copy(update={"cors_origins": ["https://a.example"]}))
    with TestClient(app) as c:
        r = c.options("/api/models/bigram/sample", headers={
            "Origin": "https://a.example", "Access-Control-Request-Method": "POST"})
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "https://a.example"
