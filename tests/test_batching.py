"""Dynamic batching: requests served together get, byte for byte, what they get alone."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.domain import cost, services
from app.domain.params import InvalidParam, SampleParams
from app.lm import KINDS, MLPConfig
from app.lm.config import OptimConfig
from app.lm.deadline import Deadline, bounded
from app.lm.flops import letter_flops
from app.lm.transformer import KVDecoder
from app.main import create_app
from app.serving import batching, worker
from app.store.training import train_to_checkpoint
from tests.conftest import forget_pages
from tests.live import run_async, served

SAMPLES = [
    {"n": 1, "seed": 1},
    {"n": 20, "seed": 2},
    {"n": 7, "seed": 3, "temperature": 0.6, "top_k": 5},
    {"n": 5, "seed": 4, "prefix": "an", "max_len": 6},
    {"n": 8, "seed": 5, "unique": True, "exclude_training": True, "temperature": 1.7},
    {"n": 300, "seed": 6},
    {"n": 3, "seed": 7, "temperature": 0.01},
    {"n": 6, "seed": 8, "suffix": "a", "min_len": 4, "top_p": 0.9},  # issue 26: names that fit
    {"n": 4, "seed": 9, "pattern": "[aeiou].*n", "min_p": 0.05, "max_len": 8},
    {"n": 5, "seed": 10, "max_len": 3},  # a name longer is drawn again, in rounds
]
SCORES = [["emma"], ["xqzvk", "José", "ava"], ["olivia"] * 3, ["a", "zzzzzzzzzzzz", "quinn"],
          [f"{a}{b}ley" for a in "bcdk" for b in "aeiou"]]
BAD = [("POST", "/api/models/{m}/score", {"names": ["b4d", "9"]}),
       ("POST", "/api/models/{m}/sample", {"n": 2, "prefix": "9"})]


def requests_for(model: str) -> list[tuple[str, str, dict | None]]:
    reqs = [("POST", f"/api/models/{model}/sample", body) for body in SAMPLES]
    reqs += [("POST", f"/api/models/{model}/score", {"names": names}) for names in SCORES]
    reqs += [("GET", f"/api/models/{model}/score?name=ava", None),
             ("GET", f"/api/models/{model}/sample?n=4&seed=9&top_k=3", None)]
    return reqs


async def send_all(app, reqs, together: bool) -> list[tuple[int, bytes]]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        async def one(method, url, body):
            r = await c.request(method, url, json=body)
            return r.status_code, r.content

        forget_pages(app)  # the GET scores are cacheable: run them, alone and together
        if not together:
            return [await one(*r) for r in reqs]
        # Hold the model thread until every request is queued, so that they are batched.
        gate = threading.Event()
        worker.executor().submit(gate.wait, 30)
        tasks = [asyncio.ensure_future(one(*r)) for r in reqs]
        deadline = time.monotonic() + 30
        while queued() < sum(1 for r in reqs if "/models/" in r[1]) - len(BAD):
            assert time.monotonic() < deadline, "requests never reached the batcher"
            await asyncio.sleep(0.01)
        gate.set()
        return list(await asyncio.gather(*tasks))


def queued() -> int:
    return batching.scoring.queued() + batching.sampling.queued()


@pytest.fixture(scope="module")
def wide_client(tmp_path_factory, tiny_names_file):
    """An MLP whose contexts are mostly too long for its precomputed table (block_size 5), with
    shapes on which the matrix kernels' rounding depends on the batch unless it is padded."""
    out = tmp_path_factory.mktemp("wide-models")
    train_to_checkpoint(
        "mlp", str(tiny_names_file), out, "mlp5",
        config=MLPConfig(block_size=5, n_embd=10, n_hidden=200, n_layers=3, dropout=0.0),
        training=OptimConfig(steps=30, batch_size=32, warmup=5, eval_interval=15))
    with TestClient(create_app(Settings(models_dir=out))) as c:
        yield c


@pytest.mark.parametrize(("fixture", "model"), [
    *(("client", kind) for kind in KINDS), ("wide_client", "mlp5")])
def test_requests_batched_together_get_the_bytes_they_get_alone(request, monkeypatch, fixture,
                                                                model):
    """For every kind: batched exactly when its rows are independent of the batch (a property
    of the weights' shapes and of this CPU's kernels, checked at load), sampling only through
    the base decoder; the same bytes either way."""
    client = request.getfixturevalue(fixture)
    lm = client.app.state.registry.get(model).model
    reqs = requests_for(model) + [(m, u.format(m=model), b) for m, u, b in BAD]
    alone = run_async(send_all(client.app, reqs, together=False))
    sizes = {op: served(monkeypatch, getattr(batching, op)) for op in ("sampling", "scoring")}
    together = run_async(send_all(client.app, reqs, together=True))
    assert [s for s, _ in alone] == [200] * (len(reqs) - 2) + [422, 422]
    for req, a, t in zip(reqs, alone, together, strict=True):
        assert a == t, req
    # They really were served together: one batch per operation (or one request at a time).
    if services.shares_sampling(lm):
        assert sizes["sampling"] == [len(SAMPLES) + 1]
    else:
        assert sizes["sampling"] == [1] * (len(SAMPLES) + 1)
    if batching.batches_scoring(lm):
        assert sizes["scoring"] == [len(SCORES) + 1]
    else:
        assert sizes["scoring"] == [1] * (len(SCORES) + 1)


def test_interleaved_with_other_models_and_pages(client):
    """Batches of several models and other model-thread work, in one go, answer the same."""
    reqs = requests_for("mlp") + requests_for("bigram") + [
        ("GET", "/api/compare?name=emma", None), ("GET", "/score?names=emma%0Aava", None)]
    alone = run_async(send_all(client.app, reqs, together=False))
    together = run_async(send_all(client.app, reqs, together=True))
    assert alone == together


def test_many_and_alone_agree_in_process(client):
    """services.sample_many / score_many against one call per request, for every model."""
    for m in client.app.state.registry.models.values():
        params = [SampleParams(**body) for body in SAMPLES]
        many = services.sample_many(m, params)
        assert many == [services.sample_names(m, p) for p in params]
        assert services.score_many(m, SCORES) == [services.score(m, names) for names in SCORES]


def test_a_bad_request_in_a_batch_fails_alone(client):
    m = client.app.state.registry.get("mlp")
    results = services.score_many(m, [["emma"], ["b4d"], ["ava"]])
    assert results[0] == services.score(m, ["emma"]) and results[2] == services.score(m, ["ava"])
    assert isinstance(results[1], InvalidParam) and "b4d" in str(results[1])
    results = services.sample_many(m, [SampleParams(n=2, seed=1), SampleParams(n=2, prefix="9")])
    assert results[0] == services.sample_names(m, SampleParams(n=2, seed=1))
    assert isinstance(results[1], InvalidParam)


def test_a_sample_request_is_checked_off_the_event_loop(client, monkeypatch):
    """Compiling a pattern takes up to its bound of work (app/lm/constraints.py, MAX_WORK):
    the event loop, which serves every route, does not do it."""
    m = client.app.state.registry.get("bigram")
    threads: list[threading.Thread] = []
    real = services.checked_sample
    monkeypatch.setattr(services, "checked_sample",
                        lambda m, p: threads.append(threading.current_thread()) or real(m, p))

    async def go() -> threading.Thread:
        await batching.sample(m, SampleParams(n=2, seed=1, pattern="e.*a"))
        return threading.current_thread()

    loop_thread = run_async(go())
    assert threads and threads[0] is not loop_thread  # the check before the request queues


def test_every_request_of_a_batch_stops_at_the_deadline(client):
    """A batch runs under the model-time deadline (app/serving/worker.py): each sampling request
    checks it before each step and stops with the names it has, exhausted."""
    m = client.app.state.registry.get("mlp")
    with bounded(Deadline(0)):
        results = services.sample_many(m, [SampleParams(n=5, seed=1), SampleParams(n=9)])
    assert [(r.names, r.exhausted) for r in results] == [([], True), ([], True)]


def test_a_batched_request_past_its_deadline_answers_exhausted(client, monkeypatch):
    monkeypatch.setattr(worker, "MODEL_SECONDS", 0.0)
    r = client.post("/api/models/mlp/sample", json={"n": 5, "seed": 1})
    assert r.status_code == 200 and r.json()["exhausted"] is True and r.json()["names"] == []


def serve_items(m, items, gone):
    return items
    yield


def whole(m, item):
    return [(item, len(item), 0)]


def test_a_batch_is_capped_and_a_model_without_independent_rows_goes_one_by_one(
        client, monkeypatch):
    m = client.app.state.registry.get("bigram")
    seen: list[list] = []
    b = batching.Batcher(lambda m, items, gone: seen.append(items) or serve_items(m, items, gone),
                         whole, lambda parts: parts[0], batches=batching.batches_scoring,
                         max_rows=5)

    async def go():
        gate = threading.Event()
        worker.executor().submit(gate.wait, 30)
        tasks = [asyncio.ensure_future(b.submit(m, ["x"] * k)) for k in (2, 2, 2, 1, 6)]
        await asyncio.sleep(0.05)
        gate.set()
        return await asyncio.gather(*tasks)

    assert run_async(go()) == [["x"] * k for k in (2, 2, 2, 1, 6)]
    assert [[len(x) for x in batch] for batch in seen] == [[2, 2, 1], [2], [6]]
    seen.clear()
    monkeypatch.setattr(type(m.model), "rows_independent", property(lambda self: False))
    run_async(go())
    assert [len(batch) for batch in seen] == [1, 1, 1, 1, 1]


def test_an_error_in_the_batch_reaches_every_request_and_nothing_hangs(client):
    m = client.app.state.registry.get("bigram")

    def broken(m, items, gone):
        raise RuntimeError("bug")
        yield

    b = batching.Batcher(broken, whole, lambda parts: parts[0],
                         batches=batching.batches_scoring)

    async def go():
        return await asyncio.gather(*(b.submit(m, ["x"]) for _ in range(3)),
                                    return_exceptions=True)

    assert [str(e) for e in run_async(go())] == ["bug"] * 3
    assert b.queues == {}


def broken_join(parts):
    raise RuntimeError("join bug")


def broken_batches(model):
    raise RuntimeError("take bug")


@pytest.mark.parametrize(("join", "batches", "error", "expected"), [
    (broken_join, batching.batches_scoring, "join bug", ["join bug"] * 3),
    # each job fails in its own _take, but the last, alone in the queue, never asks
    (lambda parts: parts[0], broken_batches, "take bug", ["take bug"] * 2 + [str(["x"] * 3)])])
def test_an_error_outside_the_serving_is_logged_and_reaches_every_request(
        client, caplog, join, batches, error, expected):
    """A bug in taking a chunk's pieces or joining a request's result reaches every request
    of the batch (none waits for its client to leave) and is logged."""
    m = client.app.state.registry.get("bigram")
    b = batching.Batcher(serve_items, whole, join, batches=batches)

    async def go():
        gate = threading.Event()
        worker.executor().submit(gate.wait, 30)
        tasks = [asyncio.ensure_future(b.submit(m, ["x"] * k)) for k in (1, 2, 3)]
        while b.queued() < 3:
            await asyncio.sleep(0.01)
        gate.set()
        # a guard, not a measure: before the fix the requests wait for ever
        return await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)

    got = run_async(go())
    assert [str(e) for e in got] == expected and b.queued() == 0
    assert any(error in r.exc_text for r in caplog.records if r.exc_text)


def test_the_transformers_requests_with_the_same_options_are_one_kv_decoder(client, monkeypatch):
    """Concurrent Transformer sample requests are batched as the MLP's (issue 28): one
    KV-cached decoder for the group when its rows are independent of the batch, and each
    request's names what it gets alone."""
    m = client.app.state.registry.get("transformer")
    made: list = []
    decoder = type(m.model).decoder
    monkeypatch.setattr(type(m.model), "decoder",
                        lambda self, ctx: made.append(decoder(self, ctx)) or made[-1])
    params = [SampleParams(n=n, seed=s) for n, s in ((3, 1), (20, 2), (7, 3))]
    alone = [services.sample_names(m, p) for p in params]
    made.clear()
    assert services.sample_many(m, params) == alone
    assert all(isinstance(d, KVDecoder) for d in made)  # the fast path, never the windows
    assert len(made) == (1 if m.model.groups_sampling else len(params))


@pytest.mark.parametrize("model", list(KINDS))
def test_requests_served_in_small_chunks_get_the_bytes_they_get_in_one(client, monkeypatch,
                                                                      model):
    """Chunked (a chunk of a few letters: every step of sampling, a few names of scoring, a
    turn each) or not (no budget: one call), the same requests give the same bytes."""
    m = client.app.state.registry.get(model)
    names = [f"{a}{b}{c}" for a in "abklm" for b in "aeiou" for c in ["", "na", "lynne"]]
    samples = [SampleParams(**body) for body in SAMPLES]

    async def go():
        scores = await asyncio.gather(*(batching.score(m, names[k:]) for k in range(0, 60, 20)))
        drawn = await asyncio.gather(*(batching.sample(m, p) for p in samples))
        return scores, drawn

    monkeypatch.setattr(cost, "limits", None)
    chunks = worker.executor().chunks
    whole = run_async(go())
    one_go = worker.executor().chunks - chunks
    monkeypatch.setattr(cost, "limits", cost.Limits(10**15, 4 * letter_flops(m.model)))
    chunks = worker.executor().chunks
    assert run_async(go()) == whole
    assert worker.executor().chunks - chunks > 3 * one_go  # it was cut, many times over


def test_a_batchs_requests_are_answered_with_one_wake_up_of_the_event_loop(client, monkeypatch):
    """The model thread settles a batch's futures in one call on the loop (worker.settle_all):
    a wake-up per request cost the event loop and the model thread ~3% of a sample request."""
    calls: list[int] = []
    settle_all = worker.settle_all

    def counted(settlements):
        calls.append(sum(1 for _ in settlements))
        settle_all(settlements)

    monkeypatch.setattr(worker, "settle_all", counted)
    reqs = [("POST", "/api/models/mlp/score", {"names": names}) for names in SCORES]
    answers = run_async(send_all(client.app, reqs, together=True))
    assert [status for status, _ in answers] == [200] * len(SCORES)
    assert calls == [len(SCORES)]  # one batch, answered at once


def test_settle_all_wakes_each_loop_once_and_leaves_a_cancelled_future_alone():
    async def settle() -> None:
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in range(3)]
        futures[1].cancel()  # its client went away
        wake_ups = []
        call = loop.call_soon_threadsafe
        loop.call_soon_threadsafe = lambda *a: wake_ups.append(a) or call(*a)
        try:
            worker.settle_all([(loop, f, k) for k, f in enumerate(futures)])
            await asyncio.sleep(0)
        finally:
            del loop.call_soon_threadsafe
        assert len(wake_ups) == 1
        assert [futures[0].result(), futures[2].result()] == [0, 2] and futures[1].cancelled()

    run_async(settle())
    closed = asyncio.new_event_loop()
    closed.close()
    worker.settle_all([(closed, closed.create_future(), 1)])  # nobody waits: no error
