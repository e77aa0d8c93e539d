"""The search for the most probable names, per model: prefixes expanded (a count, the same on
every machine) and seconds, for what the pages and the API ask.

    python bench/bench_search.py [--models-dir models] [--runs 3]

For each checkpoint: the cards' search (the MAX_TOP most probable names of any length, done once
per model and kept: app/domain/services.py, `most_probable_of`), the `/top` default (k=20) and a
search with a prefix. Each line gives the prefixes expanded, the forward passes (deadline looks)
and the median seconds of `--runs` runs on one torch thread, and the ratio of the slowest search to
the request deadline (app/serving/worker.py, MODEL_SECONDS: a safety net; the count bounds the
work).
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.domain.params import MAX_TOP  # noqa: E402
from app.lm.deadline import Deadline  # noqa: E402
from app.lm.search import most_probable  # noqa: E402
from app.lm.vocab import MAX_NAME_LEN  # noqa: E402
from app.serving.worker import MODEL_SECONDS  # noqa: E402
from app.store.registry import Registry  # noqa: E402

SEARCHES = {  # what the pages and the API ask: (k, prefix, max_len)
    f"cards (top {MAX_TOP}, kept)": (MAX_TOP, "", MAX_NAME_LEN),
    "/top k=20": (20, "", 32),
    "/top k=20 prefix=ma": (20, "ma", 32),
}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models-dir", type=Path, default=ROOT / "models")
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()
    torch.set_num_threads(1)
    registry = Registry.load_dir(args.models_dir)
    print(f"{len(registry.models)} models; deadline "
          f"(safety net) {MODEL_SECONDS:g} s; load average {os.getloadavg()[0]:.1f} "
          f"({os.cpu_count()} cores), one torch thread")
    worst = 0.0
    for m in registry.models.values():
        for what, (k, prefix, max_len) in SEARCHES.items():
            seconds = []
            for _ in range(args.runs):
                looks = itertools.count()
                never = Deadline(float("inf"), clock=lambda c=looks: next(c))
                t0 = time.perf_counter()
                r = most_probable(m.model, k, prefix=prefix, max_len=max_len, deadline=never)
                seconds.append(time.perf_counter() - t0)
            s = statistics.median(seconds)
            worst = max(worst, s)
            expanded = getattr(r, "expansions", None)  # None: a checkout from before it counted
            print(f"{m.name:16s} {what:22s} {len(r.names):3d} names"
                  f"{' (exhausted)' if r.exhausted else ''}, "
                  f"{'?' if expanded is None else f'{expanded:,}':>6} prefixes, "
                  f"{next(looks) - 1:3d} passes, {s:.3f} s")
    print(f"slowest search: {worst:.3f} s = {worst / MODEL_SECONDS:.1%} of the deadline")
    return 0


if __name__ == "__main__":
    sys.exit(main())
