"""Load test: the real server (`namelab serve`, uvicorn) on a free loopback port, driven by an
httpx asyncio client. Bounded: a fixed number of requests and a time limit.

    python bench/load.py                      # 20,000 mixed requests, 64 connections
    python bench/load.py --requests 2000 --workers 2 --json out.json

The client runs on uvloop (as the server does; 11% less client CPU per request than asyncio's
own loop in a 5,000-request run): on the same two cores, the client is what limits the rate.

The mix, in equal parts: score one name (POST), sample n=20 (POST), compare one name under
every model (GET), the bigram heatmap page (GET). Printed: requests/s, p50/p95/p99 latency per
endpoint, the error count (any non-2xx or transport error), the server's memory (RSS, summed
over its processes) before and after, and whether 100 concurrent same-seed sample requests all
returned the same names. Exits 1 if there was any error, memory grew by 10% or more, or the
same-seed names differed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import httpx
import uvloop

ROOT = Path(__file__).resolve().parents[1]
NAMES = ("emma olivia ava isabella sophia mia charlotte amelia harper evelyn liam noah oliver "
         "elijah james william benjamin lucas henry theodore zyx quorvia brantley jose "
         "anastasia kevin xavier yolanda").split()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tree_rss_mib(pid: int) -> float:
    """Resident memory of a process and all its descendants (uvicorn's workers), in MiB."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
            total += int(next(x for x in status.splitlines() if x.startswith("VmRSS:")).split()[1])
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError, StopIteration):
            continue
    return total / 1024


def stat_cpu_seconds(stat: Path) -> float:
    """CPU time (user + system) in a /proc `stat` file: a process's (/proc/PID/stat, all its
    threads) or one thread's (/proc/PID/task/TID/stat)."""
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def thread_cpu_seconds(pid: int) -> dict[int, float]:
    """stat_cpu_seconds of each live thread of process `pid`, by thread id."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out[int(task.name)] = stat_cpu_seconds(task / "stat")
        except (FileNotFoundError, ProcessLookupError):  # the thread ended meanwhile
            continue
    return out


def tree_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) used so far by a process and its live descendants."""
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            total += stat_cpu_seconds(Path(f"/proc/{p}/stat"))
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def start_server(models_dir: Path, port: int, workers: int, log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
           "--models-dir", str(models_dir), "--workers", str(workers)]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log.open("wb"),
                            stderr=subprocess.STDOUT)


def stop_server(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()


def wait_ready(proc: subprocess.Popen, url: str, timeout: float) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"server exited with status {proc.returncode} before it was ready")
        try:
            if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                return [m["name"] for m in httpx.get(f"{url}/api/models", timeout=5).json()]
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    sys.exit(f"server not ready within {timeout:.0f} s")


def build_requests(n: int, models: list[str], heatmap_model: str, seed: int = 0) -> list[tuple]:
    """(endpoint, method, path, json body or None), in a fixed shuffled order."""
    rng = random.Random(seed)
    kinds = []
    for i in range(n):
        model, name = models[i % len(models)], rng.choice(NAMES)
        kind = i % 4
        if kind == 0:
            kinds.append(("score", "POST", f"/api/models/{model}/score", {"names": [name]}))
        elif kind == 1:
            kinds.append(("sample n=20", "POST", f"/api/models/{model}/sample",
                          {"n": 20, "seed": rng.randrange(2**32)}))
        elif kind == 2:
            kinds.append(("compare", "GET", f"/api/compare?name={name}", None))
        else:
            kinds.append(("heatmap page", "GET", f"/bigram?model={heatmap_model}", None))
    rng.shuffle(kinds)
    return kinds


async def drive(url: str, requests: list[tuple], concurrency: int, time_limit: float):
    """Send every request with `concurrency` connections; (latencies by endpoint, errors)."""
    latencies: dict[str, list[float]] = defaultdict(list)
    errors: dict[str, int] = defaultdict(int)
    kinds: dict[str, int] = defaultdict(int)
    queue = iter(requests)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def worker(client: httpx.AsyncClient) -> None:
        for endpoint, method, path, body in queue:
            t0 = time.perf_counter()
            try:
                r = await client.request(method, path, json=body)
                problem = None if r.is_success else f"HTTP {r.status_code}"
            except httpx.HTTPError as e:
                problem = f"{type(e).__name__}: {e}"
            latencies[endpoint].append(time.perf_counter() - t0)
            if problem:
                errors[endpoint] += 1
                kinds[problem] += 1

    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        try:
            await asyncio.wait_for(asyncio.gather(*(worker(client) for _ in range(concurrency))),
                                   timeout=time_limit)
        except TimeoutError:
            done = sum(len(v) for v in latencies.values())
            raise SystemExit(f"load: time limit of {time_limit:g} s reached after {done:,} of "
                             f"{len(requests):,} requests; raise --time-limit or lower "
                             "--requests") from None
    for problem, count in sorted(kinds.items()):
        print(f"error x{count}: {problem}", file=sys.stderr)
    return latencies, errors


async def same_seed(url: str, model: str, n_requests: int = 100) -> tuple[int, int]:
    """(distinct answers, errors) of n concurrent identical seeded sample requests."""
    body = {"n": 20, "seed": 20251127}
    limits = httpx.Limits(max_connections=n_requests)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        rs = await asyncio.gather(*(client.post(f"/api/models/{model}/sample", json=body)
                                    for _ in range(n_requests)))
    answers = {tuple(x["name"] for x in r.json()["names"]) for r in rs if r.is_success}
    return len(answers), sum(not r.is_success for r in rs)


def endpoint_of(path: str) -> str:
    for suffix, name in (("/score", "score"), ("/sample", "sample n=20")):
        if path.startswith("/api/models/") and path.endswith(suffix):
            return name
    return {"/api/compare": "compare", "/bigram": "heatmap page"}.get(path, path)


def server_times(log: Path) -> dict[str, float]:
    """Median time inside the app per endpoint (ms), from the server's JSON access log lines:
    every request of the log, warm-up and same-seed requests included."""
    times: dict[str, list[float]] = defaultdict(list)
    for line in log.read_text().splitlines():
        if " namelab.access " in line:
            x = json.loads(line.split(" namelab.access ", 1)[1])
            times[endpoint_of(x["path"])].append(x["duration_ms"])
    return {k: sorted(v)[len(v) // 2] for k, v in sorted(times.items())
            if k in ("compare", "heatmap page", "sample n=20", "score")}


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    k = max(0, min(len(sorted_values) - 1, round(q / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[k]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=20_000)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    p.add_argument("--models-dir", type=Path, default=ROOT / "models")
    p.add_argument("--warmup", type=int, default=400, help="requests before 'memory before'")
    p.add_argument("--time-limit", type=float, default=900, help="seconds, for the whole run")
    p.add_argument("--json", type=Path, help="also write the figures here")
    p.add_argument("--log-summary", type=Path, metavar="LOG",
                   help="only print the in-app medians of an earlier run's server log")
    args = p.parse_args()
    if args.log_summary:
        print(json.dumps(server_times(args.log_summary)))
        return 0

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = Path(tempfile.mkstemp(prefix="namelab-load-", suffix=".log")[1])
    proc = start_server(args.models_dir, port, args.workers, log)
    try:
        models = wait_ready(proc, url, timeout=180)
        heatmap = "bigram" if "bigram" in models else models[0]
        rss_ready = tree_rss_mib(proc.pid)
        uvloop.run(drive(url, build_requests(args.warmup, models, heatmap, seed=1),
                          args.concurrency, args.time_limit))
        rss_before = tree_rss_mib(proc.pid)
        plan = build_requests(args.requests, models, heatmap)
        cpu_server, cpu_client = tree_cpu_seconds(proc.pid), time.process_time()
        t0 = time.perf_counter()
        latencies, errors = uvloop.run(drive(url, plan, args.concurrency, args.time_limit))
        seconds = time.perf_counter() - t0
        cpu_server = tree_cpu_seconds(proc.pid) - cpu_server
        cpu_client = time.process_time() - cpu_client
        rss_after = tree_rss_mib(proc.pid)
        distinct, seed_errors = uvloop.run(same_seed(url, models[-1]))
    finally:
        stop_server(proc)

    done = sum(len(v) for v in latencies.values())
    n_errors = sum(errors.values())
    growth = 100 * (rss_after - rss_before) / rss_before
    result = {
        "requests": done, "concurrency": args.concurrency, "workers": args.workers,
        "models": models, "seconds": round(seconds, 2),
        "requests_per_second": round(done / seconds, 1), "errors": n_errors,
        "latency_ms": {
            endpoint: {"count": len(v), **{f"p{q}": round(1000 * percentile(sorted(v), q), 1)
                                           for q in (50, 95, 99)}}
            for endpoint, v in sorted(latencies.items())
        },
        "rss_mib": {"ready": round(rss_ready, 1), "before": round(rss_before, 1),
                    "after": round(rss_after, 1), "growth_percent": round(growth, 2)},
        "cpu_seconds": {"server": round(cpu_server, 1), "client": round(cpu_client, 1),
                        "machine_cores": os.cpu_count(), "load_average": os.getloadavg()},
        "same_seed": {"requests": 100, "distinct_answers": distinct, "errors": seed_errors},
        "server_log": str(log),
    }
    print(f"{done:,} requests ({args.concurrency} connections, {args.workers} worker(s), "
          f"models {', '.join(models)}) in {seconds:.1f} s: {done / seconds:.0f} requests/s, "
          f"{n_errors} errors")
    print(f"{'endpoint':<14} {'count':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for endpoint, row in result["latency_ms"].items():
        print(f"{endpoint:<14} {row['count']:>6} {row['p50']:>8.1f} {row['p95']:>8.1f} "
              f"{row['p99']:>8.1f} {errors.get(endpoint, 0):>7}")
    print(f"server RSS: {rss_ready:.1f} MiB ready, {rss_before:.1f} MiB after {args.warmup} "
          f"warm-up requests, {rss_after:.1f} MiB after the run ({growth:+.2f}%)")
    print(f"CPU during the run: server {cpu_server:.1f} s, load client {cpu_client:.1f} s "
          f"(of {seconds * os.cpu_count():.0f} core-seconds on {os.cpu_count()} cores; "
          f"load average {os.getloadavg()[0]:.1f})")
    result["server_median_ms"] = inside = server_times(log)
    print("median time inside the app (server log), ms: "
          + ", ".join(f"{k} {v:.1f}" for k, v in inside.items()))
    print(f"100 concurrent same-seed sample requests: {distinct} distinct answer(s), "
          f"{seed_errors} errors")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    ok = done == args.requests and n_errors == 0 and growth < 10 and distinct == 1 \
        and seed_errors == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
