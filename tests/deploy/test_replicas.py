"""Three replicas behind HAProxy (deploy/compose.yaml) under a bounded load of mixed requests;
one replica is killed (SIGKILL) and started again during the run. No request fails: the
balancer sends a request whose replica is gone to another one. A seeded sample request gets the
same answer whichever replica serves it. Then a model trained through the balancer (issue 24)
is served by every replica, and its job's state is read through all of them."""

from __future__ import annotations

import asyncio
import random
import subprocess
import time
from collections import defaultdict

import httpx
import pytest

from tests.deploy.docker import SHIPPED, compose_stack, docker, wait_healthy

pytestmark = [pytest.mark.docker, pytest.mark.slow]
REPLICAS = 3
REQUESTS = 3000  # ~30 s at ~100 requests/s on two cores
CONNECTIONS = 16
KILL_AFTER = 500  # requests answered before the kill
TIME_LIMIT = 300  # seconds, for the whole load
NAMES = "emma olivia liam noah sophia jose zoe xavier amelia harper".split()
TOKEN = "replicas-test-token"
TRAINED = "replicated"


def plan(n: int, seed: int = 0) -> list[tuple[str, str, dict | None]]:
    """(method, path, body): seeded samples (a few seeds, asked many times), scores, comparisons
    and a page, shuffled."""
    rng = random.Random(seed)
    page = "/bigram?model=bigram" if "bigram" in SHIPPED else f"/models/{SHIPPED[0]}"
    requests = []
    for i in range(n):
        model, kind = SHIPPED[i % len(SHIPPED)], i % 4
        if kind == 0:
            requests.append(("POST", f"/api/models/{model}/sample",
                             {"n": 10, "seed": rng.randrange(5)}))
        elif kind == 1:
            requests.append(("POST", f"/api/models/{model}/score",
                             {"names": rng.sample(NAMES, 3)}))
        elif kind == 2:
            requests.append(("GET", f"/api/compare?name={rng.choice(NAMES)}", None))
        else:
            requests.append(("GET", page, None))
    rng.shuffle(requests)
    return requests


async def load(url: str, requests: list, on_progress) -> list[tuple]:
    """Every request over CONNECTIONS connections: [(method, path, body, status or error,
    replica, JSON answer of a sample)] in completion order."""
    results: list[tuple] = []
    todo = iter(requests)

    async def connection(client: httpx.AsyncClient) -> None:
        for method, path, body in todo:
            try:
                r = await client.request(method, path, json=body)
                sample = r.json()["names"] if path.endswith("/sample") and r.is_success else None
                results.append((method, path, body, r.status_code,
                                r.headers.get("x-namelab-replica"), sample))
            except httpx.HTTPError as e:
                results.append((method, path, body, f"{type(e).__name__}: {e}", None, None))
            await on_progress(len(results))

    limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        await asyncio.wait_for(
            asyncio.gather(*(connection(client) for _ in range(CONNECTIONS))), TIME_LIMIT)
    return results


def test_three_replicas_lose_no_request_when_one_is_killed_and_restarted(images):
    with compose_stack(images.app, images.proxy, REPLICAS,
                       env={"NAMELAB_TRAIN_TOKEN": TOKEN}) as (url, compose):
        replicas = subprocess.run([*compose, "ps", "-q", "namelab"], capture_output=True,
                                  text=True, check=True).stdout.split()
        assert len(replicas) == REPLICAS
        victim = replicas[0]
        events: dict[str, float | int] = {}
        restarted: asyncio.Task | None = None

        def kill_and_restart() -> None:
            docker("kill", victim)  # SIGKILL: requests in flight on it are cut off
            events["killed_at"] = time.monotonic()
            time.sleep(2)
            docker("start", victim)
            wait_healthy(victim, timeout=300)
            events["healthy_at"] = time.monotonic()

        async def on_progress(done: int) -> None:
            nonlocal restarted
            if done == KILL_AFTER and restarted is None:
                events["kill_index"] = done
                restarted = asyncio.create_task(asyncio.to_thread(kill_and_restart))

        async def run() -> list[tuple]:
            results = await load(url, plan(REQUESTS), on_progress)
            await restarted
            return results

        t0 = time.monotonic()
        results = asyncio.run(run())
        seconds = time.monotonic() - t0
        # All three replicas serve again once the restarted one is back: the balancer finds it
        # (DNS, then a passing /readyz check) within seconds, whenever the load ended.
        back = set()
        deadline = time.monotonic() + 60
        while len(back) < REPLICAS and time.monotonic() < deadline:
            r = httpx.get(url + "/healthz", timeout=10)
            back.add(r.headers.get("x-namelab-replica"))
        trained = train_through_the_balancer(url, replicas)

    failures = [r for r in results if r[3] != 200]
    assert len(results) == REQUESTS
    assert failures == [], f"{len(failures)} failed, e.g. {failures[:3]}"
    assert events["healthy_at"] - t0 < seconds, "the load ended before the replica was back"

    # Same seed, same names, whichever replica answered.
    answers: dict[tuple, set] = defaultdict(set)
    served_by: dict[tuple, set] = defaultdict(set)
    for _, path, body, _, replica, sample in results:
        if sample is not None:
            key = (path, body["seed"])
            answers[key].add(tuple(x["name"] for x in sample))
            served_by[key].add(replica)
    assert answers and all(len(a) == 1 for a in answers.values()), answers
    assert max(len(s) for s in served_by.values()) == REPLICAS

    # All three replicas serve again at the end (the restarted one included).
    assert len(back) == REPLICAS, back
    print(f"{REQUESTS} requests in {seconds:.1f} s ({REQUESTS / seconds:.0f}/s), 0 failed; "
          f"replica killed after {events['kill_index']} answers and healthy again "
          f"{events['healthy_at'] - events['killed_at']:.1f} s later")
    job_readers, serving = trained
    assert len(job_readers) == REPLICAS, job_readers  # every replica answered for the job
    assert serving == set(replicas), serving  # and every one serves its model


def train_through_the_balancer(url: str, replicas: list[str]) -> tuple[set[str], set[str]]:
    """A bigram of 300 names trained through the balancer (the token compose passes on): the
    replicas that answered for its job, and those that serve its model (asked inside each
    container, since only the balancer is published)."""
    names = [a + b + c for a in "bdklmnrst" for b in "aeiou" for c in ("la", "na", "ra",
             "en", "on", "ie", "ah")][:300]
    auth = {"Authorization": f"Bearer {TOKEN}"}
    r = httpx.post(url + "/api/train", json={"names": names, "kind": "bigram", "name": TRAINED},
                   headers=auth, timeout=60)
    assert r.status_code == 202, r.text
    job = r.json()["id"]
    readers: set[str] = set()
    deadline = time.monotonic() + 120
    state = None
    while (state != "done" or len(readers) < len(replicas)) and time.monotonic() < deadline:
        r = httpx.get(f"{url}/api/train/{job}", timeout=10)
        assert r.status_code == 200, r.text
        state = r.json()["state"]
        assert state not in ("failed", "cancelled", "interrupted"), r.json()
        readers.add(r.headers.get("x-namelab-replica"))
        time.sleep(0.2)
    assert state == "done"
    serving: set[str] = set()
    code = ("import urllib.request as u; "
            f"print(u.urlopen('http://127.0.0.1:8000/api/models/{TRAINED}', timeout=9).status)")
    deadline = time.monotonic() + 30  # each replica scans the shared folder every 0.5 s
    while serving != set(replicas) and time.monotonic() < deadline:
        for cid in set(replicas) - serving:
            if docker("exec", cid, "python", "-c", code, check=False) == "200":
                serving.add(cid)
        time.sleep(0.5)
    return readers, serving
