"""Throughput under concurrency, as ratios to `/healthz` measured in the same run.

    python bench/bench_throughput.py [--seconds 6] [--rounds 2] [--connections 16]

The real server (`namelab serve`, one worker, OMP_NUM_THREADS=1) runs pinned to one core and
the load generator, `wrk` (a C client; installed from Debian's packages if missing), to another,
so that the client does not take the server's CPU. Each endpoint gets `--seconds` of `wrk` with
`--connections` keep-alive connections; the endpoints are run in turn, `--rounds` times
(interleaved, so a slow minute on this shared machine hits every endpoint alike). Printed per
endpoint and round: requests/s, p50 and p99 latency, non-2xx responses, and the ratio of the
requests/s to `/healthz`'s in the same round; then the issue's targets against the lower of the
rounds' ratios. With the ratios, the server's CPU time per request (from /proc: utime + stime of
its threads over the endpoint's run, divided by its requests), split into the event loop's (the
main thread: HTTP, middleware, routing, validation, JSON) and the other threads' (the model
thread's, almost all): where a ratio's shortfall lies. Last, the latency of one big request at
a time (one connection): `sample n=1000` from each kind of model and `score 1000 names` on the
MLP.

Exits 1 if any response was not 2xx or a socket error happened.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from load import free_port, stop_server, thread_cpu_seconds, wait_ready  # bench/load.py

ROOT = Path(__file__).resolve().parents[1]

NAMES_1000 = [f"{a}{b}{c}" for a in "abcdefghij" for b in "aeiouy" for c in
              ("na", "la", "ra", "th", "n", "s", "x", "lyn", "belle", "o", "ka", "ette",
               "mi", "da", "ie", "ah", "el")][:1000]

# (label, method, path, JSON body or None, target ratio to /healthz or None)
ENDPOINTS = [
    ("GET /healthz", "GET", "/healthz", None, None),
    ("POST mlp/score 1 name", "POST", "/api/models/mlp/score", {"names": ["emma"]}, 0.7),
    ("POST bigram/score 1 name", "POST", "/api/models/bigram/score", {"names": ["emma"]}, None),
    ("POST mlp/sample n=20", "POST", "/api/models/mlp/sample", {"n": 20, "seed": 1}, 0.4),
    ("POST transformer/sample n=20", "POST", "/api/models/transformer/sample",
     {"n": 20, "seed": 1}, 0.2),
    ("POST wavenet/sample n=20", "POST", "/api/models/wavenet/sample", {"n": 20, "seed": 1},
     None),
    ("GET /bigram?model=bigram", "GET", "/bigram?model=bigram", None, 0.9),
    ("GET /score?names=emma", "GET", "/score?names=emma", None, 0.25),
    # Not the rows, to show what the caches and shared contexts above leave out: a new
    # seed for every request (no two requests share their names' contexts), and a new name for
    # every request (the score page rendered and scored every time: never a cached page).
    ("POST mlp/sample n=20 no seed", "POST", "/api/models/mlp/sample", {"n": 20}, None),
    ("GET /score?names=<new>", "GET", "/score?names={name}", None, None),
]
# One request at a time: the latency of a big request must not suffer from batching.
SINGLE = [
    *((f"POST {kind}/sample n=1000", "POST", f"/api/models/{kind}/sample", {"n": 1000, "seed": 1})
      for kind in ("bigram", "neural-bigram", "mlp", "wavenet", "transformer")),
    ("POST mlp/score 1000 names", "POST", "/api/models/mlp/score", {"names": NAMES_1000}),
]


def ensure_wrk() -> str:
    path = shutil.which("wrk")
    if path:
        return path
    if os.geteuid() != 0:
        sys.exit("wrk is not installed: run `sudo apt-get install -y wrk` (Debian's package)")
    print("installing wrk from Debian's packages", file=sys.stderr)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], env=env).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], env=env, check=True)
    return shutil.which("wrk") or sys.exit("wrk still not found after installing it")


def cores() -> tuple[set[int], set[int]]:
    """(server's cores, client's cores): one core each when there are at least two."""
    mine = sorted(os.sched_getaffinity(0))
    if len(mine) < 2:
        return set(mine), set(mine)
    return {mine[0]}, {mine[1]}


def start_server(models_dir: Path, port: int, cpus: set[int], log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
           "--models-dir", str(models_dir)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log.open("wb"),
                            stderr=subprocess.STDOUT,
                            preexec_fn=lambda: os.sched_setaffinity(0, cpus))


def lua_script(method: str, path: str, body: dict | None, folder: Path) -> Path:
    """wrk's script for a request. A `{name}` in the path becomes a new name on every request:
    'ka' and a counter written in base 26 with letters, from a random start (so that one run
    of wrk does not meet the names of another in the server's cache)."""
    script = folder / f"req-{abs(hash((method, path, json.dumps(body))))}.lua"
    lines = [f'wrk.method = "{method}"']
    if body is not None:
        lines += [f"wrk.body = {json.dumps(json.dumps(body))}",
                  'wrk.headers["Content-Type"] = "application/json"']
    if "{name}" in path:
        before, after = path.split("{name}")
        lines += ["math.randomseed(os.time())",
                  "counter = math.random(1, 2^30)",
                  "function request()",
                  "  counter = counter + 1",
                  '  local n, name = counter, ""',
                  "  while n > 0 do",
                  "    name = string.char(97 + n % 26) .. name",
                  "    n = math.floor(n / 26)",
                  "  end",
                  f'  return wrk.format(nil, "{before}ka" .. name .. "{after}")',
                  "end"]
    script.write_text("\n".join(lines) + "\n")
    return script


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(value) * UNITS[unit]


def run_wrk(wrk: str, cpus: set[int], url: str, script: Path, connections: int,
            seconds: float, server: int | None = None) -> dict:
    """wrk's figures; with `server` (its pid), also the server's CPU per request: `loop_us`
    of its main thread (the event loop), `other_us` of the rest (the model thread)."""
    url = url.replace("{name}", "x")  # (the script writes such a path itself)
    before = thread_cpu_seconds(server) if server else {}
    cmd = [wrk, "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", "-s", str(script),
           url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True,
                         preexec_fn=lambda: os.sched_setaffinity(0, cpus)).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
    p99 = ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(bad.group(1)) if bad else 0) + (sum(map(int, sock.groups())) if sock else 0)
    figures = {"rps": rps, "p50": p50, "p99": p99, "errors": errors}
    if server:
        after = thread_cpu_seconds(server)
        spent = {tid: t - before.get(tid, 0.0) for tid, t in after.items()}
        n = int(re.search(r"(\d+) requests in", out).group(1)) or 1
        figures["loop_us"] = spent.get(server, 0.0) / n * 1e6
        figures["other_us"] = sum(t for tid, t in spent.items() if tid != server) / n * 1e6
    return figures


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models-dir", type=Path, default=ROOT / "models")
    p.add_argument("--seconds", type=float, default=6)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--json", type=Path, help="also write the figures here")
    args = p.parse_args()

    wrk = ensure_wrk()
    server_cpus, client_cpus = cores()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    tmp = Path(tempfile.mkdtemp(prefix="namelab-throughput-"))
    load0 = os.getloadavg()[0]
    proc = start_server(args.models_dir, port, server_cpus, tmp / "server.log")
    rounds: list[dict[str, dict]] = []
    single: dict[str, dict] = {}
    try:
        wait_ready(proc, url, timeout=180)
        scripts = {label: lua_script(method, path, body, tmp)
                   for label, method, path, body, _ in ENDPOINTS}
        for label, _, path, _, _ in ENDPOINTS:  # warm-up: every endpoint, 1 s
            run_wrk(wrk, client_cpus, url + path, scripts[label], args.connections, 1)
        for _ in range(args.rounds):
            figures = {}
            for label, _, path, _, _ in ENDPOINTS:
                figures[label] = run_wrk(wrk, client_cpus, url + path, scripts[label],
                                         args.connections, args.seconds, server=proc.pid)
            rounds.append(figures)
        for label, method, path, body in SINGLE:
            script = lua_script(method, path, body, tmp)
            run_wrk(wrk, client_cpus, url + path, script, 1, 1)
            single[label] = run_wrk(wrk, client_cpus, url + path, script, 1, args.seconds)
    finally:
        stop_server(proc)

    print(f"server on core {sorted(server_cpus)}, wrk on core {sorted(client_cpus)}; "
          f"{args.connections} connections, {args.seconds:g} s per endpoint, "
          f"{args.rounds} interleaved rounds; load average {load0:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after ({os.cpu_count()} cores)")
    head = f"{'endpoint':<28}" + "".join(
        f" | r{i + 1} req/s  p50 ms  p99 ms  ratio" for i in range(len(rounds)))
    print(head)
    n_errors = 0
    worst: dict[str, float] = {}
    for label, *_ in ENDPOINTS:
        row = f"{label:<28}"
        for figures in rounds:
            f, base = figures[label], figures["GET /healthz"]["rps"]
            ratio = f["rps"] / base
            worst[label] = min(worst.get(label, ratio), ratio)
            n_errors += f["errors"]
            row += f" | {f['rps']:>9.0f} {f['p50']:>7.1f} {f['p99']:>7.1f} {ratio:>6.3f}"
        print(row)
    print("the server's CPU per request, us, in the last round: the event loop + the other "
          "threads (the model thread); healthz / that = the CPU's ratio")
    last, base_cpu = rounds[-1], rounds[-1]["GET /healthz"]
    healthz_us = base_cpu["loop_us"] + base_cpu["other_us"]
    for label, *_ in ENDPOINTS:
        f = last[label]
        total = f["loop_us"] + f["other_us"]
        print(f"  {label:<28} {f['loop_us']:>7.0f} + {f['other_us']:>6.0f} = {total:>7.0f}"
              f"   ratio {healthz_us / total:.3f}")
    print("one request at a time (1 connection):")
    for label, f in single.items():
        n_errors += f["errors"]
        print(f"  {label:<26} {f['rps']:>6.1f} req/s  p50 {f['p50']:.1f} ms  "
              f"p99 {f['p99']:.1f} ms")
    print("targets (lowest ratio over the rounds):")
    for label, *_, target in ENDPOINTS:
        if target is not None:
            verdict = "met" if worst[label] >= target else "NOT met"
            print(f"  {label:<26} {worst[label]:.3f} >= {target}: {verdict}")
    print(f"errors (non-2xx or socket): {n_errors}")
    if args.json:
        args.json.write_text(json.dumps({"rounds": rounds, "single": single,
                                         "load_average": load0}, indent=2) + "\n")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0 if n_errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
