"""Serving while a model trains (issue 24, item 4), and how long training through the API takes.

    python bench/bench_train_load.py [--requests 300] [--concurrency 4] [--mlp-steps 9000]
                                     [--wait] [--names ../shared/data/names.txt]

One real server (`namelab serve`, one worker, the shipped models, the users' models in a
temporary folder), measured in one run:

1. submit-to-served: POST /api/train of a bigram on ../shared/data/names.txt (skipped if absent),
   then the time until GET /api/models/<name> answers 200;
2. idle: `--requests` one-name scores (POST /api/models/mlp/score) and as many 20-name samples
   (POST /api/models/mlp/sample, n=20, a new seed each), `--concurrency` at a time: requests/s;
3. the same while an MLP job (the shipped MLP's preset, `--mlp-steps` steps) trains on
   names.txt: requests/s, and the ratio to idle (the issue asks at least 0.5 on 2 cores);
4. with `--wait`, the MLP job's time to done and its validation NLL.

Counts, not durations, bound each phase. Exits 1 if a request failed or the job was not running
through phase 3 (then the ratio would not be one under training).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx
from load import free_port, start_server, stop_server, wait_ready  # bench/load.py

ROOT = Path(__file__).resolve().parents[1]
NAMES_TXT = ROOT.parent / "shared" / "data" / "names.txt"
SCORE_NAMES = "emma olivia liam noah zyx quorvia anastasia kevin".split()


async def rate(url: str, label: str, n: int, concurrency: int) -> float:
    """Requests/s of `n` requests of one kind, `concurrency` at a time (any failure: exit 1)."""
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        todo = iter(range(n))

        async def one(i: int) -> None:
            if label == "score":
                body = {"names": [SCORE_NAMES[i % len(SCORE_NAMES)]]}
                r = await client.post("/api/models/mlp/score", json=body)
            else:
                r = await client.post("/api/models/mlp/sample", json={"n": 20, "seed": i})
            if r.status_code != 200:
                sys.exit(f"{label} request {i}: {r.status_code} {r.text[:200]}")

        async def worker() -> None:
            for i in todo:
                await one(i)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return n / (time.perf_counter() - t0)


def submit(url: str, names: Path, kind: str, name: str, options: dict | None = None) -> dict:
    with names.open("rb") as f:
        fields = {"kind": kind, "name": name, **{k: str(v) for k, v in (options or {}).items()}}
        r = httpx.post(f"{url}/api/train", data=fields, files={"file": ("names.txt", f)},
                       timeout=60)
    if r.status_code != 202:
        sys.exit(f"POST /api/train {kind}: {r.status_code} {r.text[:300]}")
    return r.json()


def served_in(url: str, names: Path, name: str) -> None:
    """A bigram job from POST to its model answering GET /api/models/<name>, and where the time
    went: queued (to the job process's start), trained and written, then loaded and served."""
    t0 = time.time()
    bigram = submit(url, names, "bigram", name)
    while httpx.get(f"{url}/api/models/{name}", timeout=10).status_code != 200:
        if job(url, bigram["id"])["state"] in ("failed", "cancelled", "interrupted"):
            sys.exit(f"bigram job ended: {job(url, bigram['id'])}")
        time.sleep(0.02)
    t1, state = time.time(), job(url, bigram["id"])
    print(f"bigram {name} on names.txt ({state['data']['n_names']:,} names): submitted to "
          f"served in {t1 - t0:.2f} s (waited {state['started'] - state['created']:.2f} s, "
          f"trained and written {state['finished'] - state['started']:.2f} s, loaded "
          f"{t1 - state['finished']:.2f} s)")


def job(url: str, job_id: str) -> dict:
    return httpx.get(f"{url}/api/train/{job_id}", timeout=10).json()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=300, help="requests per measurement")
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--mlp-steps", type=int, default=9000, help="the MLP job's steps")
    p.add_argument("--wait", action="store_true", help="wait for the MLP job: time and val NLL")
    p.add_argument("--names", type=Path, default=NAMES_TXT, help="the classic names.txt")
    args = p.parse_args()
    if not args.names.is_file():
        print(f"skipped: {args.names} is absent")
        return 0
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["NAMELAB_USER_MODELS_DIR"] = str(Path(tmp) / "users")
        server = start_server(ROOT / "models", port, 1, Path(tmp) / "server.log")
        try:
            wait_ready(server, url, 120)
            for name in ("bench-bigram", "bench-bigram-2"):  # the first may meet a cold start
                served_in(url, args.names, name)
            measure = {k: asyncio.run(rate(url, k, 50, args.concurrency))  # warm-up
                       for k in ("score", "sample")}
            idle = {k: asyncio.run(rate(url, k, args.requests, args.concurrency))
                    for k in ("score", "sample")}
            mlp = submit(url, args.names, "mlp", "bench-mlp", {"steps": args.mlp_steps})
            while (state := job(url, mlp["id"]))["step"] < 51:  # training, not starting
                time.sleep(0.1)
            step0, t0 = state["step"], time.perf_counter()
            busy = {k: asyncio.run(rate(url, k, args.requests, args.concurrency))
                    for k in ("score", "sample")}
            state = job(url, mlp["id"])
            pace = (state["step"] - step0) / (time.perf_counter() - t0)
            if state["state"] != "running":
                print(f"the MLP job was not running through the measurement: {state['state']}")
                failed = True
            print(f"{'requests/s':<28} {'idle':>8} {'MLP trains':>11} {'ratio':>6}")
            for k, label in (("score", "POST mlp/score 1 name"),
                             ("sample", "POST mlp/sample n=20")):
                print(f"{label:<28} {idle[k]:8.1f} {busy[k]:11.1f} {busy[k] / idle[k]:6.2f}")
            print(f"the MLP job meanwhile: step {step0:,} to {state['step']:,} of "
                  f"{state['total_steps']:,} ({pace:.1f} steps/s, as the state file reports "
                  f"them: every 50 steps)")
            del measure
            if args.wait:
                while (state := job(url, mlp["id"]))["state"] in ("queued", "running"):
                    time.sleep(1)
                print(f"MLP preset ({args.mlp_steps:,} steps) on names.txt: {state['state']} in "
                      f"{state['elapsed']:.0f} s, val NLL {state['metrics'].get('val_nll')}")
            else:
                httpx.delete(f"{url}/api/train/{mlp['id']}", timeout=30)
        finally:
            stop_server(server)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
