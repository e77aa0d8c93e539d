"""The model thread's queue against a real `namelab serve` process (issue 22): a flood of
abandoned requests is forgotten, and a light request is served within a few chunks of a flood
of the heaviest requests. Counted in chunks of model work (/metrics), never in seconds."""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest

from app.domain import cost
from app.store.checkpoints import load_checkpoint
from tests.live import live_process, run_async

BOUND = 60.0  # seconds: a bound for a slow machine, not a timing target
HEAVY = {"names": [f"{a}{b}{c}" * 6 for a in "bdklm" for b in "aeiou" for c in "nrst"] * 10}


@pytest.fixture(scope="module")
def server(models_dir):
    """Chunks of 21 of HEAVY's names on the tiny Transformer: a heavy request is 48 chunks."""
    model = load_checkpoint(models_dir / "transformer.safetensors").model
    chunk = 21 * cost.score_flops(model, HEAVY["names"][:1])
    env = {"OMP_NUM_THREADS": "1", "NAMELAB_CHUNK_FLOPS": str(chunk),
           "NAMELAB_MAX_QUEUE": "1000"}
    with live_process(models_dir, cli=True, env=env) as (base, proc):
        yield base


def metrics(base: str) -> dict[str, float]:
    text = httpx.get(base + "/metrics", timeout=BOUND).text
    return {m[1]: float(m[2]) for m in re.finditer(r"^(namelab_model\S*) (\S+)$", text, re.M)}


def chunks(base: str) -> float:
    return metrics(base)["namelab_model_chunks_total"]


def client(address: str, timeout: float = BOUND) -> httpx.AsyncClient:
    """A client whose connections come from `address` (127.0.0.0/8 is all loopback): the
    queue's round-robin tells clients apart by address."""
    return httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(local_address=address),
                             timeout=timeout)


@pytest.mark.slow
def test_after_a_flood_of_abandoned_requests_a_light_one_is_served_at_once(server):
    before = chunks(server)

    async def abandon() -> int:
        async with client("127.0.0.1", timeout=0.3) as c:
            async def one() -> int:
                try:
                    await c.post(server + "/api/models/transformer/score", json=HEAVY)
                    return 0
                except httpx.TimeoutException:
                    return 1
            return sum(await asyncio.gather(*(one() for _ in range(40))))

    # every client gave up, but perhaps the first, served alone before its 0.3 s were up
    # (the cost of a letter is no longer counted on its first request: app/domain/cost.py)
    assert run_async(abandon()) >= 39
    start = chunks(server)
    r = httpx.get(server + "/api/models/bigram/score?name=emma", timeout=BOUND)
    assert r.status_code == 200
    # The 40 x 48 chunks queued were forgotten: at most those in progress when their
    # clients left (the server learns of 40 disconnects one at a time) ran first.
    assert chunks(server) - start <= 20
    # Of the 1,920 chunks asked for, about one request's worth ran (the one perhaps served in
    # time, the pieces in progress as clients left); what a request that never reached the
    # queue or was dropped from it would have cost, never ran.
    assert chunks(server) - before <= 2 * 48 + 20
    assert metrics(server)["namelab_model_queue_requests"] == 0


def light_waits(base: str) -> tuple[float, float]:
    """(light requests answered, of those within 16 chunks): the queue's histogram."""
    text = httpx.get(base + "/metrics", timeout=BOUND).text
    count = re.search(r'^namelab_model_wait_chunks_count{size="light"} (\S+)$', text, re.M)
    within = re.search(r'^namelab_model_wait_chunks_bucket{le="16",size="light"} (\S+)$',
                       text, re.M)
    return float(count[1]), float(within[1])


@pytest.mark.slow
def test_a_light_request_waits_about_a_chunk_per_busy_client_during_a_heavy_flood(server):
    """8 clients flood with heavy scoring (48 chunks a request); another client's one-name
    score waits, counted on the model thread, one chunk per busy client (8), not the backlog."""
    async def flood(stop: asyncio.Event, address: str) -> int:
        sent = 0
        async with client(address) as c:
            while not stop.is_set() and sent < 20:
                r = await c.post(server + "/api/models/transformer/score", json=HEAVY)
                assert r.status_code == 200
                sent += 1
        return sent

    async def go() -> None:
        stop = asyncio.Event()
        floods = [asyncio.ensure_future(flood(stop, f"127.0.0.{k}")) for k in range(2, 10)]
        async with client("127.0.0.10") as light:
            await asyncio.sleep(1.0)  # the flood is on
            for k in range(10):
                r = await light.get(server + f"/api/models/bigram/score?name=lig{'h' * k}t")
                assert r.status_code == 200
        stop.set()
        for f in floods:
            f.cancel()
        await asyncio.gather(*floods, return_exceptions=True)

    count, _ = light_waits(server)
    run_async(go())
    count_after, within = light_waits(server)
    assert count_after - count >= 10
    assert within == count_after  # every light request: at most 16 chunks (8 busy clients)
