"""The model thread: every route that touches a model runs on one thread, the loading too."""

from __future__ import annotations

import asyncio
import threading
from typing import Annotated

import httpx
import pytest
from fastapi import FastAPI, Query
from fastapi.testclient import TestClient

from app.config import DEFAULT_MODELS_DIR, Settings
from app.domain import cost, services
from app.domain.params import SampleParams
from app.lm import scoring
from app.lm.flops import letter_flops
from app.main import create_app
from app.serving import batching, worker
from app.store.checkpoints import load_checkpoint
from app.store.registry import LoadedModel
from tests.conftest import forget_pages
from tests.live import run_async, served


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


# --- the queue: fair, bounded, forgetting clients who left (issue 22) -------------------------


async def as_client(address: str, coro):
    """Await coro as a request of the client at `address` (what WatchDisconnect sets)."""
    worker._client.set(address)  # a task's own context: set for this task only
    return await coro


def chunked(log: list[str], who: str, chunks: int):
    """A job of `chunks` chunks, each noted in `log` as it runs."""
    def job():
        for _ in range(chunks):
            log.append(who)
            yield
        return who
    return job


def test_a_light_request_waits_one_chunk_per_busy_client_however_many_requests_they_send():
    log: list[str] = []

    async def go():
        gate = threading.Event()
        worker.executor().submit(gate.wait, 30)
        flood = [asyncio.ensure_future(as_client("10.0.0.1", worker.submit(
            chunked(log, "heavy", 10)))) for _ in range(8)]
        await asyncio.sleep(0.05)
        light = asyncio.ensure_future(as_client("10.0.0.2", worker.submit(
            chunked(log, "light", 1))))
        await asyncio.sleep(0.05)
        gate.set()
        return await asyncio.gather(light, *flood)

    assert run_async(go()) == ["light"] + ["heavy"] * 8
    # Counted in chunks: the 80 chunks queued first, round-robin: the light one runs second.
    assert log.index("light") <= 1 and len(log) == 81


def test_scoring_from_a_flooding_client_lets_another_clients_request_in_within_a_chunk(
        client, monkeypatch):
    """Batched scoring, in chunks: a client's heavy requests are served a chunk a turn, and
    another client's one name (on another model) is served after at most one of them."""
    transformer, bigram = (client.app.state.registry.get(n) for n in ("transformer", "bigram"))
    heavy = [f"{a}{b}{c}nnnnnn" for a in "abc" for b in "aeiou" for c in "lmnrst"]  # 90 names
    per_name = cost.score_flops(transformer.model, heavy[:1])
    monkeypatch.setattr(cost, "limits", cost.Limits(10**15, 20 * per_name))  # 20 names
    calls: list[str] = []
    real = services.score_many
    monkeypatch.setattr(services, "score_many",
                        lambda m, pieces: calls.append(m.name) or real(m, pieces))

    async def go():
        gate = threading.Event()
        worker.executor().submit(gate.wait, 30)
        flood = [asyncio.ensure_future(as_client("10.0.0.1", batching.score(transformer, heavy)))
                 for _ in range(4)]
        await asyncio.sleep(0.05)
        light = asyncio.ensure_future(as_client("10.0.0.2", batching.score(bigram, ["emma"])))
        await asyncio.sleep(0.05)
        gate.set()
        return await asyncio.gather(light, *flood)

    light, *flood = run_async(go())
    assert [s.name for s in light] == ["emma"] and all(len(f) == 90 for f in flood)
    assert calls.count("transformer") == 4 * 5  # 90 names: pieces of 20 names at most, ...
    assert calls.index("bigram") <= 1  # ... and the light request's turn came after one


def test_a_small_sample_request_is_not_held_for_every_step_of_a_big_one(client, monkeypatch):
    """A light sample request of another client, queued as a heavy one of the same model
    starts, is answered after one of the heavy one's chunks (counted on the model thread), not
    after all of them: it is not pulled into a batch whose every step is a chunk."""
    transformer = client.app.state.registry.get("transformer")
    letter = letter_flops(transformer.model)
    monkeypatch.setattr(cost, "limits", cost.Limits(10**15, 20 * letter))  # 20 rows a step
    thread = worker.executor()
    chunks = []

    async def go():
        gate = threading.Event()
        thread.submit(gate.wait, 30)
        big = asyncio.ensure_future(as_client("10.0.0.8", batching.sample(
            transformer, SampleParams(n=200, seed=1, max_len=15))))
        while batching.sampling.queued() < 1:
            await asyncio.sleep(0.01)
        small = asyncio.ensure_future(as_client("10.0.0.9", batching.sample(
            transformer, SampleParams(n=1, seed=2, max_len=15))))
        while batching.sampling.queued() < 2:
            await asyncio.sleep(0.01)
        light = thread.wait_sums["light"]
        start = thread.chunks
        gate.set()
        got = await small
        chunks.append(thread.wait_sums["light"] - light)  # the small one's wait, in chunks
        await big
        chunks.append(thread.chunks - start)  # all of it
        return got

    got = run_async(go())
    alone = services.sample_names(transformer, SampleParams(n=1, seed=2, max_len=15))
    assert got.names == alone.names  # same seed, same name
    waited, everything = chunks
    assert everything >= 5  # the heavy request runs a chunk a step, ...
    assert waited <= 2  # ... and the light one waits the gate and one of them


def test_sixteen_small_sample_requests_to_the_shipped_transformer_share_one_batch(
        monkeypatch):
    """Under the default budget, 16 concurrent requests of 20 names to the shipped Transformer
    are one batch (one step for all), each answered as it would be alone. A step costs what
    its KV-cached decoder computes (a position a row): counted as a window a row, a batch
    stopped at 15 of them and the 16th ran alone, as expensive as the 15 (issue 28)."""
    transformer = LoadedModel.from_checkpoint(load_checkpoint(
        DEFAULT_MODELS_DIR / "transformer.safetensors"))
    s = Settings()
    monkeypatch.setattr(cost, "limits", cost.Limits(s.request_flops, s.chunk_flops))
    batches: list[int] = []
    real = services.sample_many_steps
    monkeypatch.setattr(services, "sample_many_steps",
                        lambda m, requests, *a, **k: batches.append(len(requests))
                        or real(m, requests, *a, **k))
    requests = [SampleParams(n=20, seed=k) for k in range(16)]

    async def go():
        gate = threading.Event()
        worker.executor().submit(gate.wait, 30)
        tasks = [asyncio.ensure_future(batching.sample(transformer, p)) for p in requests]
        while batching.sampling.queued() < len(requests):
            await asyncio.sleep(0.01)
        gate.set()
        return await asyncio.gather(*tasks)

    got = run_async(go())
    assert batches == [16]
    for p, r in zip(requests[::5], got[::5], strict=True):
        assert r.names == services.sample_names(transformer, p).names


def test_a_request_of_a_sampling_batch_is_answered_when_its_own_run_ends(client, monkeypatch):
    """Two requests share a batch (each step fits in a chunk); the short one is answered when
    its own names are drawn, chunks before the long one's last step."""
    transformer = client.app.state.registry.get("transformer")
    letter = letter_flops(transformer.model)
    monkeypatch.setattr(cost, "limits", cost.Limits(10**15, 60 * letter))  # 60 rows a step
    thread = worker.executor()
    long = SampleParams(n=20, seed=1, max_len=30, temperature=3.0)
    short = SampleParams(n=1, seed=2, max_len=3)
    chunks = []

    async def go():
        gate = threading.Event()
        thread.submit(gate.wait, 30)
        tasks = [asyncio.ensure_future(as_client(f"10.0.1.{k}", batching.sample(transformer, p)))
                 for k, p in enumerate((long, short))]
        while batching.sampling.queued() < 2:
            await asyncio.sleep(0.01)
        light, start = thread.wait_sums["light"], thread.chunks
        gate.set()
        got = await tasks[1]
        chunks.append(thread.wait_sums["light"] - light)  # the short one's wait, in chunks
        await tasks[0]
        chunks.append(thread.chunks - start)
        return got

    sizes = served(monkeypatch, batching.sampling)
    got = run_async(go())
    assert got.names == services.sample_names(transformer, short).names  # same seed, same name
    assert sizes[-1] == 2  # one batch, ...
    waited, everything = chunks
    # ... its short request answered at its own end (a few rounds of draws: names longer
    # than 3 are drawn again), not at the long one's (before: 19 chunks of 20)
    assert everything >= 12 and waited <= everything // 2


def test_beyond_max_queue_requests_get_503_with_retry_after_counted_in_the_metrics(settings):
    app = create_app(settings)
    with TestClient(app) as c:
        worker.configure(2)
        try:
            before = metric(c, 'namelab_model_queue_total{outcome="rejected"}')

            async def go():
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://t") as ac:
                    gate = threading.Event()
                    worker.executor().submit(gate.wait, 30)
                    held = [asyncio.ensure_future(ac.get("/api/models/mlp/top?k=2"))
                            for _ in range(2)]
                    while worker.executor().admitted < 2:
                        await asyncio.sleep(0.01)
                    over = await ac.get("/api/models/bigram/top?k=2")
                    page = await ac.get("/sample?model=bigram&n=2")
                    gate.set()
                    return over, page, [r.status_code for r in await asyncio.gather(*held)]

            over, page, held = run_async(go())
        finally:
            worker.configure(settings.max_queue)
        assert held == [200, 200]
        for r in (over, page):
            assert r.status_code == 503 and r.headers["retry-after"] == "1"
            assert "NAMELAB_MAX_QUEUE" in r.text
        assert metric(c, 'namelab_model_queue_total{outcome="rejected"}') == before + 2


def metric(c: TestClient, line: str) -> float:
    text = c.get("/metrics").text
    return float(next(x for x in text.splitlines() if x.startswith(line + " ")).split()[-1])


def leaving(app, path: str, query: bytes, left: asyncio.Event) -> tuple[asyncio.Future,
                                                                        list[dict]]:
    """A GET of `path` sent straight to the ASGI app by a client who disconnects once `left`
    is set: the request's task, and the messages the app sent."""
    sent: list[dict] = []

    async def receive():
        if not sent:
            sent.append({})
            return {"type": "http.request", "body": b"", "more_body": False}
        await left.wait()
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": path, "raw_path": path.encode(),
             "query_string": query, "headers": [], "client": ("10.0.0.3", 1),
             "server": ("t", 80), "scheme": "http", "http_version": "1.1", "root_path": "",
             "app": app}
    return asyncio.ensure_future(app(scope, receive, send)), sent


def test_a_request_whose_client_left_is_dropped_before_its_model_work_starts(settings):
    """An abandoned request (its client disconnected while it waited) never runs: the ASGI
    disconnect reaches the queue, and the metrics count it."""
    app = create_app(settings)
    ran: list[str] = []

    async def go():
        gate = threading.Event()
        worker.executor().submit(gate.wait, 30)
        left = asyncio.Event()
        request, sent = leaving(app, "/api/models/mlp/top", b"k=3", left)
        while worker.executor().admitted < 1:
            await asyncio.sleep(0.01)
        left.set()  # the client goes away while its request waits
        await asyncio.wait_for(request, 30)
        gate.set()
        return [m for m in sent if m.get("type") == "http.response.start"]

    with TestClient(app) as c:
        real = services.top_names
        services.top_names = lambda m, q: ran.append(m.name) or real(m, q)
        try:
            before = metric(c, 'namelab_model_queue_total{outcome="dropped"}')
            (start,) = run_async(go())
            assert c.get("/api/models/bigram/top?k=1").status_code == 200  # the thread goes on
        finally:
            services.top_names = real
        assert start["status"] == 499 and ran == ["bigram"]
        assert metric(c, 'namelab_model_queue_total{outcome="dropped"}') == before + 1


def test_a_model_thread_routes_deadline_passes_once_its_client_has_left(settings):
    """A route on the model thread is one chunk, never stopped between chunks: its deadline
    passes when its client disconnects, so its sampling or search stops at its next look."""
    from app.lm import deadline as deadlines

    app = FastAPI()
    worker.install(app)
    started, proceed, looked = threading.Event(), threading.Event(), []

    @app.get("/long")
    @worker.model_thread
    def long() -> dict:
        started.set()
        looked.append(deadlines.current().passed())  # the client is still there
        proceed.wait(30)
        looked.append(deadlines.current().passed())  # it has left
        return {}

    async def go():
        left = asyncio.Event()
        request, sent = leaving(app, "/long", b"", left)
        while not started.is_set():
            await asyncio.sleep(0.01)
        left.set()  # the client goes away while its route runs
        await asyncio.wait_for(request, 30)
        proceed.set()
        worker.executor().submit(lambda: None).result(30)  # the route has returned
        return [m for m in sent if m.get("type") == "http.response.start"]

    (start,) = run_async(go())
    assert start["status"] == 499 and looked == [False, True]


def queued_jobs() -> int:
    thread = worker.executor()
    with thread.cond:
        return sum(len(jobs) for jobs in thread.clients.values())


@pytest.mark.parametrize("route", ["run", "score"])
def test_requests_whose_clients_left_leave_the_model_threads_queue_at_once(client, route):
    """A flood of requests abandoned while they wait leaves nothing queued behind it: what
    the model thread holds is what it admitted."""
    bigram = client.app.state.registry.get("bigram")

    def request():
        if route == "run":
            return worker.run(len, "x")
        return batching.score(bigram, ["emma"])

    async def go():
        thread = worker.executor()
        gate = threading.Event()
        thread.submit(gate.wait, 30)
        admitted = thread.admitted
        tasks = [asyncio.ensure_future(as_client("10.0.0.5", request())) for _ in range(100)]
        while thread.admitted < admitted + 100:
            await asyncio.sleep(0.01)
        full = queued_jobs()
        for t in tasks:
            t.cancel()  # what the disconnect does: the request's task ends
        await asyncio.gather(*tasks, return_exceptions=True)
        left = queued_jobs(), batching.scoring.queued(), thread.admitted - admitted
        gate.set()
        return full, left

    full, left = run_async(go())
    assert full == 100 and left == (0, 0, 0)


def test_a_request_served_in_anothers_chunk_leaves_no_job_behind(client):
    """Requests whose pieces another job's chunk served leave the model thread's queue then,
    not one a round afterwards."""
    bigram = client.app.state.registry.get("bigram")

    async def go():
        thread = worker.executor()
        first, second, began = threading.Event(), threading.Event(), threading.Event()
        thread.submit(first.wait, 30)
        tasks = [asyncio.ensure_future(as_client("10.0.0.6", batching.score(bigram, ["emma"])))
                 for _ in range(50)]
        while batching.scoring.queued() < 50:
            await asyncio.sleep(0.01)
        # the turn after the first chunk
        thread.submit(lambda: began.set() or second.wait(30), client="10.0.0.7")
        first.set()
        got = await asyncio.gather(*tasks)  # one chunk served all 50
        while not began.is_set():
            await asyncio.sleep(0.01)
        left = queued_jobs()
        second.set()
        return got, left

    got, left = run_async(go())
    assert all([s.name for s in x] == ["emma"] for x in got) and left == 0
