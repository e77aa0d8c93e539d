"""CPU time of sampling from each shipped kind in-process, and where the Transformer's goes.

    python bench/bench_decoder.py [--models-dir models] [--repeats 7]

One torch thread (as the server). For each kind, `services.sample_names` with n=20 and n=1000
(seeds 0, 1, ...), timed in CPU seconds of this process (`time.process_time`: on this shared
machine the wall clock mostly measures the wait for a core), minimum and median of `--repeats`;
then the Transformer's n=1000 split into its decoder's steps (`Rowwise.step`), its cache
gathers (`KVDecoder.advance`) and the rest (the sampler). Issue 28's target: the Transformer
and the WaveNet within 2x the MLP.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.domain import services  # noqa: E402
from app.domain.params import SampleParams  # noqa: E402
from app.lm.transformer import KVDecoder, Rowwise  # noqa: E402
from app.store.registry import Registry  # noqa: E402

KINDS = ("bigram", "neural-bigram", "mlp", "wavenet", "transformer")


def cpu_ms(fn, repeats: int) -> list[float]:
    times = []
    for seed in range(repeats):
        t = time.process_time()
        fn(seed)
        times.append((time.process_time() - t) * 1000)
    return times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models-dir", type=Path, default=ROOT / "models")
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args()
    torch.set_num_threads(1)
    registry = Registry.load_dir(args.models_dir)
    print(f"load average {os.getloadavg()[0]:.1f} ({os.cpu_count()} cores); CPU ms, "
          f"min / median of {args.repeats}")
    medians = {}
    for kind in KINDS:
        m = registry.get(kind)
        row = []
        for n in (20, 1000):
            times = cpu_ms(lambda s, m=m, n=n: services.sample_names(m, SampleParams(n=n, seed=s)),
                           args.repeats)
            medians[kind, n] = statistics.median(times)
            row.append(f"n={n}: {min(times):6.1f} / {medians[kind, n]:6.1f}")
        print(f"{kind:14} " + "   ".join(row))
    for n in (20, 1000):
        print(f"n={n}: Transformer / MLP {medians['transformer', n] / medians['mlp', n]:.2f}, "
              f"WaveNet / MLP {medians['wavenet', n] / medians['mlp', n]:.2f} (target <= 2)")

    if not hasattr(Rowwise, "step"):  # before issue 28: no step to time
        return
    spent = {"steps": 0.0, "gathers": 0.0}

    def timing(f, key: str):
        def timed(*a):
            t = time.process_time()
            try:
                return f(*a)
            finally:
                spent[key] += time.process_time() - t
        return timed

    Rowwise.step = timing(Rowwise.step, "steps")
    KVDecoder.advance = timing(KVDecoder.advance, "gathers")
    m = registry.get("transformer")
    total = sum(cpu_ms(lambda s: services.sample_names(m, SampleParams(n=1000, seed=s)),
                       args.repeats)) / args.repeats
    steps, gathers = (spent[k] * 1000 / args.repeats for k in ("steps", "gathers"))
    print(f"transformer n=1000, mean {total:.1f} ms: decoder steps {steps:.1f}, cache gathers "
          f"{gathers:.1f}, the rest {total - steps - gathers:.1f}; load average "
          f"{os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
