"""A light request during a flood of the heaviest allowed requests (issue 22).

Serves the shipped models with `namelab serve` (default settings) on a free loopback port
(tests/live.py). Measures the latency of a one-name bigram score (POST, never cached) sent
one after another by one client: first alone, then while 8 other clients (each from its own
loopback address, 127.0.0.2-9: the model thread's queue takes turns by address) each send, one
after another, the heaviest Transformer score the request budget admits (1,000 distinct names
of 45 letters: 46,000 letters, 2.9e11 of NAMELAB_REQUEST_FLOPS' 3e11). Prints p50 and p99 of
both and their ratio, the flood's requests served, and the chunks the light requests waited
(the server's own count: namelab_model_wait_chunks).

Bounded: --light requests in each phase, and the flood phase stops after --seconds.

    python bench/bench_flood.py                  # 100 light requests alone, then in a flood
    python bench/bench_flood.py --light 50 --seconds 60
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import re
import statistics
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.live import live_server  # noqa: E402

CLIENTS = 8
LETTERS = 45  # 1,000 names of 45 letters: the heaviest Transformer score within the budget
HEAVY = {"names": ["".join(p) for p in itertools.islice(
    itertools.product("bdklmnrst", "aeiou", "lnr", "aeiouy", "mn"), 1000)]}
HEAVY["names"] = [(x * 12)[:LETTERS] for x in HEAVY["names"]]
LIGHT_NAMES = ["".join(p) for p in itertools.product("bcdfg", "aeiou", "lmnrs", "aeiou")]


def percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q / 100 * (len(xs) - 1)))]


async def light_latencies(base: str, count: int, offset: int) -> list[float]:
    transport = httpx.AsyncHTTPTransport(local_address="127.0.0.10")
    async with httpx.AsyncClient(base_url=base, transport=transport, timeout=300) as c:
        out = []
        for k in range(count):
            name = LIGHT_NAMES[(offset + k) % len(LIGHT_NAMES)]
            start = time.perf_counter()
            r = await c.post("/api/models/bigram/score", json={"names": [name]})
            out.append(time.perf_counter() - start)
            assert r.status_code == 200, r.text
        return out


async def flood(base: str, address: str, stop: asyncio.Event, served: list[int]) -> None:
    transport = httpx.AsyncHTTPTransport(local_address=address)
    async with httpx.AsyncClient(base_url=base, transport=transport, timeout=600) as c:
        while not stop.is_set():
            r = await c.post("/api/models/transformer/score", json=HEAVY)
            assert r.status_code == 200, r.text[:300]
            served.append(1)


def light_waits(base: str) -> tuple[float, float]:
    text = httpx.get(base + "/metrics").text
    count = re.search(r'^namelab_model_wait_chunks_count{size="light"} (\S+)$', text, re.M)
    total = re.search(r'^namelab_model_wait_chunks_sum{size="light"} (\S+)$', text, re.M)
    return float(count[1]), float(total[1])


async def run(base: str, light: int, seconds: float) -> None:
    await light_latencies(base, 10, 2 * light)  # warm-up: the first requests of a process
    alone = await light_latencies(base, light, 0)
    stop, served = asyncio.Event(), []
    floods = [asyncio.ensure_future(flood(base, f"127.0.0.{k}", stop, served))
              for k in range(2, 2 + CLIENTS)]
    await asyncio.sleep(2.0)  # every flooding client has a request in the queue
    n0, s0 = await asyncio.to_thread(light_waits, base)
    try:
        during = await asyncio.wait_for(light_latencies(base, light, light), seconds)
    finally:
        stop.set()
        n1, s1 = await asyncio.to_thread(light_waits, base)
        for f in floods:
            f.cancel()
        await asyncio.gather(*floods, return_exceptions=True)
    for label, xs in (("alone", alone), ("flood", during)):
        print(f"one-name bigram score, {label:5}: p50 {1000 * percentile(xs, 50):7.1f} ms  "
              f"p99 {1000 * percentile(xs, 99):7.1f} ms  ({len(xs)} requests)")
    print(f"ratio flood/alone: p50 {percentile(during, 50) / percentile(alone, 50):.1f}x  "
          f"p99 {percentile(during, 99) / percentile(alone, 99):.1f}x")
    print(f"heavy Transformer scores served during the flood: {len(served)} "
          f"({CLIENTS} clients, {len(HEAVY['names'])} names of {LETTERS} letters each)")
    print(f"chunks a light request waited (server's count): mean {(s1 - s0) / (n1 - n0):.1f} "
          f"over {int(n1 - n0)} requests; median {statistics.median(during) * 1000:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--light", type=int, default=100, help="light requests per phase")
    parser.add_argument("--seconds", type=float, default=180, help="flood phase, at most")
    parser.add_argument("--models-dir", default=str(ROOT / "models"))
    args = parser.parse_args()
    with live_server(Path(args.models_dir), cli=True) as base:
        asyncio.run(run(base, args.light, args.seconds))


if __name__ == "__main__":
    main()
