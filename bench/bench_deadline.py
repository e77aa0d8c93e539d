"""Bounded work per request: how long the heaviest requests hold the model thread, and how long
a small request waits behind one. Against the real server (`namelab serve`, one worker, one
torch thread) with the shipped models, on a free loopback port.

    python bench/bench_deadline.py            # about 20 s

Heavy requests (issue 14): sampling 1000 unique names greedily (temperature 1e-30: one name
exists, so it used to draw 50,000 looking for more, ~10 s), the same excluding the training
names with max_len 64, and the 100 most probable names of up to 64 letters. Each is sent alone
(its latency), then again with a small `GET .../bigram/sample?n=1` sent 0.2 s after it (how long
the small one waits). Target: every heavy request answers within 1.5 s and the small one
within 1.5 s. Counts bound the work (names drawn, prefixes expanded: docs/determinism.md); the
deadline of 10 s of model time is only a safety net. Exits 1 if a target is missed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from load import ROOT, free_port, start_server

HEAVY = {
    "sample greedy unique n=1000": ("POST", "/api/models/mlp/sample",
                                    {"n": 1000, "unique": True, "temperature": 1e-30, "seed": 1,
                                     "max_len": 64}),
    "sample new names n=1000": ("POST", "/api/models/mlp/sample",
                                {"n": 1000, "unique": True, "exclude_training": True,
                                 "seed": 1, "max_len": 64}),
    "top k=100 max_len=64": ("GET", "/api/models/mlp/top?k=100&max_len=64", None),
}
SMALL = "/api/models/bigram/sample?n=1&seed=1"
TARGET_S = 1.5


def timed(client: httpx.Client, method: str, path: str, body) -> tuple[float, httpx.Response]:
    t0 = time.perf_counter()
    r = client.request(method, path, json=body)
    return time.perf_counter() - t0, r


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models-dir", default=str(ROOT / "models"))
    args = parser.parse_args()
    port = free_port()
    log = Path(tempfile.mkdtemp()) / "server.log"
    server = start_server(Path(args.models_dir), port, 1, log)
    url = f"http://127.0.0.1:{port}"
    failed = False
    try:
        with httpx.Client(base_url=url, timeout=60) as client:
            for _ in range(300):
                try:
                    if client.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.2)
            else:
                print(f"server did not start; see {log}")
                return 1
            load = os.getloadavg()[0]
            print(f"machine: {os.cpu_count()} cores, load average {load:.1f}; target "
                  f"{TARGET_S} s for every request")
            print(f"{'heavy request':<30} {'alone s':>8} {'exhausted':>9} {'small waits s':>14}")
            for label, (method, path, body) in HEAVY.items():
                alone, r = timed(client, method, path, body)
                heavy = threading.Thread(target=timed, args=(client, method, path, body))
                heavy.start()
                time.sleep(0.2)
                small, r_small = timed(client, "GET", SMALL, None)
                heavy.join()
                ok = r.status_code == 200 and r_small.status_code == 200 and \
                    alone <= TARGET_S and small <= TARGET_S
                failed |= not ok
                print(f"{label:<30} {alone:>8.2f} {str(r.json().get('exhausted')):>9} "
                      f"{small:>14.2f}  {'met' if ok else 'MISSED'}")
            print(f"(load average now {os.getloadavg()[0]:.1f})")
    finally:
        server.terminate()
        server.wait(timeout=30)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
