"""Why the server runs all model work on one thread (app/serving/worker.py), measured in one run.

    python bench/bench_threads.py [--models-dir models] [--repeats 15]

libgomp (PyTorch's OpenMP runtime) keeps one team of worker threads per thread that starts
parallel work. The same work is timed in three phases of one process:

  A. one thread: everything on one dedicated thread, as the server does now (the main thread
     never runs torch code, the models are loaded on that thread too);
  B. many threads: the same calls spread over 8 threads in turn, as FastAPI's thread pool
     spreads sync routes (each thread gets its own OpenMP team);
  C. one thread again: back on the dedicated thread, now that the other teams exist.

The work: `sample n=1000` and `score 1000 names` for the MLP and the bigram (app.domain.services, as
the API calls them), and a loop of 300 small tensor operations (a (300, 27) log_softmax and
cumsum, the size of a sampling step). Printed: the median of --repeats runs, in ms, and B and
C as multiples of A. Only meaningful with torch's default threads (2 here): with
OMP_NUM_THREADS=1 there are no teams.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from itertools import cycle
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.domain import services  # noqa: E402
from app.domain.params import SampleParams  # noqa: E402
from app.store.registry import Registry  # noqa: E402

THREADS_IN_B = 8


def small_ops() -> None:
    x = torch.randn(300, 27, generator=torch.Generator().manual_seed(0))
    for _ in range(300):
        torch.log_softmax(x, dim=1).cumsum(dim=1)


def workload(registry: Registry) -> dict:
    mlp, bigram = registry.get("mlp"), registry.get("bigram")
    names = [x.name for x in services.sample_names(mlp, SampleParams(n=1000, seed=0)).names]
    return {
        "mlp sample n=1000": lambda: services.sample_names(mlp, SampleParams(n=1000, seed=1)),
        "mlp score 1000 names": lambda: services.score(mlp, names),
        "bigram sample n=1000": lambda: services.sample_names(bigram, SampleParams(n=1000, seed=1)),
        "bigram score 1000 names": lambda: services.score(bigram, names),
        "300 small tensor ops": small_ops,
    }


def timed(pools, fn, repeats: int) -> float:
    """Median ms of fn, each run submitted to the next pool in turn."""
    times = []
    for _, pool in zip(range(repeats), cycle(pools), strict=False):
        t = time.perf_counter()
        pool.submit(fn).result()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models-dir", type=Path, default=ROOT / "models")
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    one = ThreadPoolExecutor(max_workers=1)
    many = [ThreadPoolExecutor(max_workers=1) for _ in range(THREADS_IN_B)]
    registry = one.submit(Registry.load_dir, args.models_dir).result()
    work = one.submit(workload, registry).result()
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")

    phases = {"A. one thread": [one], f"B. {THREADS_IN_B} threads": many,
              "C. one thread again": [one]}
    results = {label: {name: timed(pools, fn, args.repeats) for name, fn in work.items()}
               for label, pools in phases.items()}

    print(f"\nmedian of {args.repeats} runs, ms")
    print(f"{'work':26}" + "".join(f"{label:>22}" for label in phases))
    a = results["A. one thread"]
    for name in work:
        cells = [f"{results[label][name]:>10.1f}" + (
            f" ({results[label][name] / a[name]:.1f}x)" if label != "A. one thread" else "")
            for label in phases]
        print(f"{name:26}" + "".join(f"{c:>22}" for c in cells))


if __name__ == "__main__":
    main()
