"""Hot reload (issue 24): the time from a checkpoint file written into a running server's
folder to that model being served.

    python bench/bench_reload.py [--runs 10] [--models bigram,mlp,transformer] [--models-dir models]

`namelab serve` (OMP_NUM_THREADS=1, as in the Docker image) is started on a temporary folder
holding the shipped bigram. Then, `--runs` times for each of `--models`, its shipped checkpoint
is written into the folder under a new name, atomically as `namelab train` writes (a temporary
file beside it, then a rename), and GET /api/models/NAME is asked every 10 ms until it answers
200 (a model not loaded yet is a 404, which no cache keeps). Before each write the script waits
a random 0-0.5 s (seeded), so that writes fall anywhere in the scan's period, not just after
a scan. The time counts the wait for the
next scan (every NAMELAB_RELOAD_SECONDS, 0.5 s: 0.25 s on average) and the model's load and
checks on the model thread. Prints each run, then the median, min and max per model; the
promise is within 2 s.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from load import free_port, stop_server, wait_ready  # bench/load.py

ROOT = Path(__file__).resolve().parents[1]
POLL = 0.01  # seconds between two looks
TIMEOUT = 30.0  # seconds a model may take to appear before the run fails


def write_atomically(source: Path, target: Path) -> None:
    tmp = target.with_name(f".{target.name}.bench.tmp")
    shutil.copyfile(source, tmp)
    os.replace(tmp, target)


def time_to_served(client: httpx.Client, base: str, source: Path, target: Path) -> float:
    """Seconds from `source` written as `target` until the server serves it."""
    url = f"{base}/api/models/{target.stem}"
    t0 = time.perf_counter()
    write_atomically(source, target)
    while time.perf_counter() - t0 < TIMEOUT:
        if client.get(url).status_code == 200:
            return time.perf_counter() - t0
        time.sleep(POLL)
    sys.exit(f"{target.stem} not served within {TIMEOUT:.0f} s")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--models", default="bigram,mlp,transformer")
    p.add_argument("--models-dir", type=Path, default=ROOT / "models")
    args = p.parse_args()
    kinds = [k.strip() for k in args.models.split(",") if k.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "models"
        folder.mkdir()
        shutil.copyfile(args.models_dir / "bigram.safetensors", folder / "bigram.safetensors")
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        cmd = [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port",
               str(port), "--models-dir", str(folder)]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "NAMELAB_LOG_LEVEL": "warning"}
        with (Path(tmp) / "server.log").open("wb") as log:
            proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_ready(proc, base, 120)
            with httpx.Client(timeout=10) as client:
                results, rng = {}, random.Random(0)
                for kind in kinds:
                    source = args.models_dir / f"{kind}.safetensors"
                    times = []
                    for i in range(args.runs):
                        time.sleep(rng.uniform(0, 0.5))  # anywhere in the scan's period
                        seconds = time_to_served(client, base, source,
                                                 folder / f"{kind}-new-{i}.safetensors")
                        times.append(seconds)
                        print(f"{kind} run {i + 1}: served {seconds:.3f} s after written",
                              flush=True)
                    results[kind] = times
        finally:
            stop_server(proc)
    print(f"\nwritten -> served, {args.runs} runs each (scan every 0.5 s):")
    for kind, times in results.items():
        print(f"  {kind:12s} median {statistics.median(times):.3f} s, min {min(times):.3f} s, "
              f"max {max(times):.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
