"""Speed of sampling and scoring, on this machine, in one run (about a minute at most).

    python bench/bench_api.py [--models-dir models] [--threads 1]

1. The batched sampler (app.lm.sampling, `drive` of one `sampler`: all n names advance one
   character per forward pass) against the lecture's naive loop (one name at a time, one forward
   pass per letter), in names per second, for n = 1, 100 and 10,000, for the bigram and the MLP.
   The naive loop's cost per name does not depend on n, so for large n it is timed on its first
   NAIVE_CAP names.
2. The latency of `POST /api/models/{model}/sample` with n=1000 and of
   `POST /api/models/{model}/score` with 1000 names, through a real `namelab serve` on a free
   loopback port, measured with httpx (median and 90th percentile of REQUESTS requests).

Targets (issues 3 and 12): batched >= 50x naive at n = 10,000; both HTTP calls < 50 ms for the
MLP, < 100 ms for the WaveNet and the Transformer.
Every loop here is bounded; the machine is shared, so the load average is printed too.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.lm import LanguageModel  # noqa: E402
from app.lm.sampling import drive, sampler  # noqa: E402
from app.store.checkpoints import load_checkpoint  # noqa: E402
from app.store.schema import SUFFIX  # noqa: E402

MODELS = ("bigram", "mlp")  # the sampler against the naive loop
HTTP_TARGETS = {"mlp": 50, "wavenet": 100, "transformer": 100}  # ms, each HTTP call, if shipped
SIZES = (1, 100, 10_000)
NAIVE_CAP = 500  # names timed in the naive loop (its cost per name does not depend on n)
MIN_SECONDS = 0.3  # repeat a batched measurement until it has run this long (at most 20 times)
REQUESTS = 20  # HTTP requests per measurement, after 3 warm-up requests


@torch.no_grad()
def naive_sample(model: LanguageModel, n: int, g: torch.Generator, max_len: int = 32) -> list:
    """The lecture's loop: one name at a time, one forward pass of one context per letter."""
    itos, B = model.vocab.itos, model.block_size
    names = []
    for _ in range(n):
        context, out = [0] * B, []
        while len(out) < max_len:
            logits, _ = model(torch.tensor([context]))
            probs = F.softmax(logits, dim=1)
            ix = torch.multinomial(probs, num_samples=1, generator=g).item()
            if ix == 0:
                break
            out.append(itos[ix])
            context = context[1:] + [ix]
        names.append("".join(out))
    return names


def seeded() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def rate(fn, n: int) -> float:
    """Names per second: best of repeated runs, repeated until MIN_SECONDS have passed."""
    best, spent, runs = float("inf"), 0.0, 0
    while (spent < MIN_SECONDS or runs < 2) and runs < 20:
        t = time.perf_counter()
        fn()
        dt = time.perf_counter() - t
        best, spent, runs = min(best, dt), spent + dt, runs + 1
    return n / best


def bench_sampler(models_dir: Path) -> dict[str, float]:
    print(f"\n1. Sampler, names/s (torch threads: {torch.get_num_threads()})")
    print(f"{'model':8} {'n':>7} {'batched':>12} {'naive':>10} {'speed-up':>9}")
    ratios = {}
    for name in MODELS:
        model = load_checkpoint(models_dir / f"{name}{SUFFIX}").model
        naive_rate: dict[int, float] = {}
        for n in SIZES:
            batched = rate(lambda n=n, m=model: drive(m, [sampler(m, n, seeded())]), n)
            k = min(n, NAIVE_CAP)
            if k not in naive_rate:
                naive_rate[k] = rate(lambda k=k, m=model: naive_sample(m, k, seeded()), k)
            naive = naive_rate[k]
            note = "" if k == n else f"  (naive timed on {k} names)"
            print(f"{name:8} {n:>7,} {batched:>12,.0f} {naive:>10,.0f} {batched / naive:>8.0f}x"
                  f"{note}")
            ratios[f"{name}@{n}"] = batched / naive
    return ratios


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(models_dir: Path, threads: int | None) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
         "--models-dir", str(models_dir)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"the server did not become ready (exit code {proc.poll()})")


def latency(http: httpx.Client, path: str, bodies) -> tuple[float, float]:
    """(median, p90) in ms of POSTs of the given bodies, after 3 warm-up requests."""
    times = []
    for i, body in enumerate(bodies):
        t = time.perf_counter()
        r = http.post(path, json=body)
        dt = time.perf_counter() - t
        if r.status_code != 200:
            raise SystemExit(f"{path}: {r.status_code} {r.text[:200]}")
        if i >= 3:
            times.append(dt * 1000)
    times.sort()
    return statistics.median(times), times[int(0.9 * (len(times) - 1))]


def bench_http(models_dir: Path, threads: int | None, models: list[str]) -> dict[str, float]:
    proc, url = start_server(models_dir, threads)
    shown = threads or "torch's default"
    print(f"\n2. HTTP API latency, ms ({REQUESTS} requests each; server threads: {shown})")
    print(f"{'request':40} {'median':>8} {'p90':>8}")
    medians = {}
    try:
        with httpx.Client(base_url=url, timeout=60) as http:
            for name in models:
                path = f"/api/models/{name}"
                seeds = range(REQUESTS + 3)
                med, p90 = latency(http, f"{path}/sample", ({"n": 1000, "seed": s} for s in seeds))
                print(f"{'POST ' + path + '/sample n=1000':40} {med:>8.1f} {p90:>8.1f}")
                medians[f"{name} sample"] = med
                names = [x["name"] for x in
                         http.post(f"{path}/sample", json={"n": 1000, "seed": 0}).json()["names"]]
                bodies = ({"names": names} for _ in range(REQUESTS + 3))
                med, p90 = latency(http, f"{path}/score", bodies)
                print(f"{'POST ' + path + '/score 1000 names':40} {med:>8.1f} {p90:>8.1f}")
                medians[f"{name} score"] = med
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models-dir", type=Path, default=ROOT / "models",
                        help="folder with bigram.safetensors and mlp.safetensors")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads, here and in the server (default: torch's)")
    args = parser.parse_args()
    missing = [m for m in MODELS if not (args.models_dir / f"{m}{SUFFIX}").exists()]
    if missing:
        raise SystemExit(f"{args.models_dir} has no {', '.join(missing)} checkpoint; train one "
                         f"with `namelab train --model mlp` or pass --models-dir")
    if args.threads:
        torch.set_num_threads(args.threads)
    mlp = load_checkpoint(args.models_dir / f"mlp{SUFFIX}").meta
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; "
          f"torch {torch.__version__}; mlp {mlp.config}, {mlp.n_params:,} parameters")

    t0 = time.perf_counter()
    ratios = bench_sampler(args.models_dir)
    shipped = [m for m in HTTP_TARGETS if (args.models_dir / f"{m}{SUFFIX}").exists()]
    medians = bench_http(args.models_dir, args.threads, ["bigram", *shipped])

    def verdict(ok: bool) -> str:
        return "met" if ok else "MISSED"

    r = ratios["mlp@10000"]
    print("\ntargets:")
    print(f"  batched >= 50x naive at n=10,000: bigram {ratios['bigram@10000']:.0f}x, "
          f"mlp {r:.0f}x: {verdict(min(r, ratios['bigram@10000']) >= 50)}")
    for name in shipped:
        for what in ("sample", "score"):
            ms, target = medians[f"{name} {what}"], HTTP_TARGETS[name]
            print(f"  {name} {what} 1000 over HTTP < {target} ms: {ms:.1f} ms: "
                  f"{verdict(ms < target)}")
    print(f"(load average now {os.getloadavg()[0]:.1f}; "
          f"benchmark took {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
