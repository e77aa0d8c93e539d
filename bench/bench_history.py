"""The history table (app/store/history.py): its size on disk, its load time and memory, a lookup's
time, and (with --build) how long `namelab history` takes to build it from the records.

    python bench/bench_history.py [--runs 7] [--lookups 2000] [--build]

Load: `history.load` of the shipped file, --runs times (the file in the OS cache after the
first), median and range; memory: the arrays' bytes (HistoryTable.nbytes) and this process's
resident memory (RSS, from /proc) before and after the first load. Lookup: the median time of
`table.lookup(name)` over --lookups rounds of eight names (in the records or not), in-process.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.config import DEFAULT_HISTORY_FILE  # noqa: E402
from app.store import history  # noqa: E402

NAMES = ["mildred", "jayden", "emma", "mary", "jordan", "zilpah", "xqzvk", "Zoë"]


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--lookups", type=int, default=2000)
    ap.add_argument("--build", action="store_true", help="also time the build from the records")
    args = ap.parse_args()
    path = DEFAULT_HISTORY_FILE
    print(f"load average {os.getloadavg()[0]:.1f}; {path.relative_to(ROOT)}: "
          f"{path.stat().st_size:,} bytes")
    before = rss_mib()
    times = []
    for _ in range(args.runs):
        start = time.perf_counter()
        table = history.load(path)
        times.append(time.perf_counter() - start)
        if len(times) == 1:
            after = rss_mib()
    print(f"load: median {statistics.median(times) * 1e3:.1f} ms ({min(times) * 1e3:.1f}-"
          f"{max(times) * 1e3:.1f}), first {times[0] * 1e3:.1f} ms; {len(table):,} entries, "
          f"arrays {table.nbytes / 2**20:.1f} MiB, RSS +{after - before:.1f} MiB "
          f"({before:.0f} -> {after:.0f} MiB)")
    per = []
    for _ in range(args.lookups):
        start = time.perf_counter()
        for name in NAMES:
            table.lookup(name)
        per.append((time.perf_counter() - start) / len(NAMES))
    print(f"lookup: median {statistics.median(per) * 1e6:.0f} us per name "
          f"({len(NAMES)} names x {args.lookups})")
    if args.build:
        from app.data import ssa_parquet_path

        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "history.safetensors"
            start = time.perf_counter()
            history.write(out, ssa_parquet_path())
            took = time.perf_counter() - start
            same = out.read_bytes() == path.read_bytes()
        print(f"build: {took:.1f} s; same bytes as the shipped file: {same}")


if __name__ == "__main__":
    main()
