"""Time of the look-inside pages and routes (issue 25) for each shipped model, as ratios to
/healthz measured in the same run (a shared machine's speed changes from minute to minute; the
ratio says what a route costs beyond the HTTP round trip).

    python bench/bench_explorer.py [--models-dir models] [--runs 7]

Serves the models with a real `uvicorn` on a free loopback port (tests/live.py). For each route
and model: the median of `runs` requests, each with another prefix or name so that the page
cache (app/serving/pagecache.py) never answers; then the same URL again, from the cache, for the
routes it keeps. The first card request of a model computes its hidden layers' health (then kept):
it is timed on its own, on a fresh server. Prints one table, markdown.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.live import live_server  # noqa: E402

PREFIXES = ["em", "ja", "ol", "ma", "li", "so", "ar", "ka", "el", "no", "be", "ad", "ch"]
NAMES = ["emma", "james", "olivia", "mason", "liam", "sophia", "aria", "kai", "ella", "noah",
         "ben", "ada", "chloe"]


def timed(client: httpx.Client, url: str) -> float:
    t = time.perf_counter()
    r = client.get(url)
    elapsed = time.perf_counter() - t
    if r.status_code != 200:
        raise SystemExit(f"{url}: {r.status_code} {r.text[:200]}")
    return elapsed


def median_of(client: httpx.Client, urls: list[str]) -> float:
    return statistics.median(timed(client, u) for u in urls)


def routes(model: str, card: dict) -> dict[str, tuple[list[str], bool]]:
    """route label -> (one URL per run, whether the page cache keeps it)."""
    out = {
        "GET /next (page)": ([f"/next?model={model}&prefix={p}" for p in PREFIXES], True),
        "GET /next, 3 models": ([f"/next?model={model}&model=mlp&model=bigram&prefix={p}"
                                 for p in PREFIXES], True),
        "GET /next, ends with a, at most 8": (
            [f"/next?model={model}&prefix={p}&suffix=a&max_len=8" for p in PREFIXES], True),
        "GET /api/.../next": ([f"/api/models/{model}/next?prefix={p}&top_k=5"
                               for p in PREFIXES], True),
        "GET /api/.../next, ends with a": (
            [f"/api/models/{model}/next?prefix={p}&suffix=a&max_len=8" for p in PREFIXES],
            True),
        "GET /models/{m} (card page)": ([f"/models/{model}?name={n}" for n in NAMES], False),
    }
    if card["type"] == "transformer":
        out["GET /api/.../attention"] = ([f"/api/models/{model}/attention?name={n}"
                                          for n in NAMES], True)
    if card["has_embeddings"]:
        out["GET /embeddings?letter="] = ([f"/embeddings?model={model}&letter={c}"
                                           for c in "abcdefghijklm"], True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models-dir", default=str(ROOT / "models"))
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    runs = max(1, min(args.runs, len(PREFIXES)))
    rows: list[tuple[str, str, float, float, str]] = []
    with live_server(Path(args.models_dir)) as base, httpx.Client(base_url=base,
                                                                   timeout=60) as client:
        cards = {c["name"]: c for c in client.get("/api/models").json()}  # health: computed
        health = median_of(client, ["/healthz"] * 21)
        for model, card in cards.items():
            for label, (urls, cached) in routes(model, card).items():
                timed(client, urls[-1])  # warm-up (and the URL the cache then keeps)
                t = median_of(client, urls[:runs])
                c = median_of(client, [urls[-1]] * runs) if cached else None
                rows.append((model, label, t, t / health,
                             "" if c is None else f"{c * 1e3:.1f} ms ({c / health:.1f}x)"))
        health_end = median_of(client, ["/healthz"] * 21)
    first = []
    for model, card in cards.items():
        if card["hidden_layers"] is None:
            continue
        with live_server(Path(args.models_dir)) as base, httpx.Client(base_url=base,
                                                                       timeout=60) as client:
            h = median_of(client, ["/healthz"] * 11)
            t = timed(client, f"/api/models/{model}")  # computes the health (and the dataset)
            again = median_of(client, [f"/api/models/{model}"] * 5)
            first.append((model, t, t / h, again / h))
    print(f"load average {os.getloadavg()[0]:.2f}; /healthz median {health * 1e3:.2f} ms "
          f"(start) / {health_end * 1e3:.2f} ms (end); {runs} runs per route\n")
    print("| model | route | median | ratio to /healthz | again, from the page cache |")
    print("|---|---|---:|---:|---|")
    for model, label, t, ratio, cached in rows:
        print(f"| {model} | {label} | {t * 1e3:.1f} ms | {ratio:.1f}x | {cached} |")
    print("\n| model | first card JSON (computes the health) | ratio | later, ratio |")
    print("|---|---:|---:|---:|")
    for model, t, ratio, later in first:
        print(f"| {model} | {t * 1e3:.0f} ms | {ratio:.0f}x | {later:.1f}x |")


if __name__ == "__main__":
    main()
