"""Requests/s through the balancer with 1, 2, 3... Namelab replicas (deploy/compose.yaml), the
same mixed load as bench/load.py (score, sample n=20, compare, the heatmap page).

    make image && PYTHONPATH=. python bench/replicas.py                # 1, 2 and 3 replicas
    PYTHONPATH=. python bench/replicas.py --replicas 3 --requests 6000 --concurrency 64

Uses the images `namelab` and `namelab-proxy` (`make image`); each count of replicas is started,
warmed up, loaded, and removed. Besides requests/s, the CPU time each part used per request (the
replicas and the balancer from their cgroups, the load client from its own process): that does
not depend on what else the machine runs, requests/s does. Exits 1 if any request failed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import time
from pathlib import Path

import httpx

from bench.load import build_requests, drive
from tests.deploy.docker import compose_stack


def cpu_seconds(cid: str) -> float:
    """CPU time used so far by a container, from its cgroup (v1, or v2)."""
    for path, scale in ((f"/sys/fs/cgroup/cpuacct/docker/{cid}/cpuacct.usage", 1e-9),
                        (f"/sys/fs/cgroup/system.slice/docker-{cid}.scope/cpu.stat", 1e-6)):
        if Path(path).exists():
            text = Path(path).read_text().split()
            return int(text[0] if scale == 1e-9 else text[text.index("usage_usec") + 1]) * scale
    raise SystemExit(f"no cgroup CPU account for container {cid}")


def containers(compose: list[str], service: str) -> list[str]:
    ids = subprocess.run([*compose, "ps", "-q", service], capture_output=True, text=True,
                         check=True).stdout.split()
    return [subprocess.run(["docker", "inspect", "-f", "{{.Id}}", i], capture_output=True,
                           text=True, check=True).stdout.strip() for i in ids]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--replicas", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--requests", type=int, default=4000)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--warmup", type=int, default=300)
    p.add_argument("--time-limit", type=float, default=600, help="seconds, per count")
    p.add_argument("--image", default="namelab")
    p.add_argument("--proxy-image", default="namelab-proxy")
    args = p.parse_args()

    rows, failed = [], 0
    for n in args.replicas:
        with compose_stack(args.image, args.proxy_image, n, project="namelab-bench") as (
                url, compose):
            models = [m["name"] for m in httpx.get(f"{url}/api/models", timeout=30).json()]
            heatmap = "bigram" if "bigram" in models else models[0]
            asyncio.run(drive(url, build_requests(args.warmup, models, heatmap, seed=1),
                              args.concurrency, args.time_limit))
            replicas, proxy = containers(compose, "namelab"), containers(compose, "proxy")
            cpu0 = [sum(map(cpu_seconds, replicas)), sum(map(cpu_seconds, proxy)),
                    time.process_time()]
            load0 = os.getloadavg()[0]
            t0 = time.perf_counter()
            latencies, errors = asyncio.run(drive(
                url, build_requests(args.requests, models, heatmap), args.concurrency,
                args.time_limit))
            seconds = time.perf_counter() - t0
            cpu = [sum(map(cpu_seconds, replicas)) - cpu0[0],
                   sum(map(cpu_seconds, proxy)) - cpu0[1], time.process_time() - cpu0[2]]
        done = sum(len(v) for v in latencies.values())
        every = sorted(x for v in latencies.values() for x in v)
        failed += sum(errors.values())
        rows.append((n, done, seconds, sum(errors.values()), every[len(every) // 2],
                     every[int(0.95 * len(every))], load0, [1000 * c / done for c in cpu]))
        print(f"{n} replica(s): {done:,} requests in {seconds:.1f} s, "
              f"{done / seconds:.0f} requests/s, {sum(errors.values())} errors", flush=True)

    print(f"\n{args.concurrency} connections, models {', '.join(models)}, {os.cpu_count()} cores")
    print(f"{'replicas':>8} {'requests':>9} {'seconds':>8} {'req/s':>6} {'errors':>6} "
          f"{'p50 ms':>7} {'p95 ms':>7} {'load avg':>8}  CPU ms/request: replicas proxy client")
    for n, done, seconds, errs, p50, p95, load, cpu in rows:
        print(f"{n:>8} {done:>9,} {seconds:>8.1f} {done / seconds:>6.0f} {errs:>6} "
              f"{1000 * p50:>7.0f} {1000 * p95:>7.0f} {load:>8.1f}  "
              f"{cpu[0]:>24.1f} {cpu[1]:>5.1f} {cpu[2]:>6.1f}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
