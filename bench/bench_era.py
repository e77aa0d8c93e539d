"""The era model's costs (issue 27), in-process on one torch thread: its load, P(decade, sex |
name) for one name and for a score page's 20, sampling by decade against sampling without one.

    OMP_NUM_THREADS=1 python bench/bench_era.py [--model models/era] [--runs 9]

Prints one markdown table: the checkpoint's size, its load (load_checkpoint: read, checks,
freeze), then the median wall and CPU time of `runs` runs of each operation (each run after one
warm-up). A conditional model serves a condition through a view that shares its weights
(app/lm/conditional.py), so a first request under a new condition is timed on its own too.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

NAMES = ["mildred", "jayden", "emma", "gertrude", "brayden", "linda", "nevaeh", "ethel",
         "kayleigh", "dorothy", "aiden", "shirley", "madison", "elmer", "debra", "khaleesi",
         "barbara", "harper", "clarence", "liam"]


def timed(fn, runs: int) -> tuple[float, float]:
    """Median (wall ms, CPU ms) of `runs` calls after one warm-up."""
    fn()
    wall, cpu = [], []
    for _ in range(runs):
        w, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(1000 * (time.perf_counter() - w))
        cpu.append(1000 * (time.process_time() - c))
    return statistics.median(wall), statistics.median(cpu)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(ROOT / "models" / "era"))
    ap.add_argument("--runs", type=int, default=9)
    args = ap.parse_args()

    import torch

    from app.domain import era
    from app.lm.sampling import drive, sampler
    from app.store.checkpoints import load_checkpoint

    path = Path(args.model).with_suffix(".safetensors")
    w, c = time.perf_counter(), time.process_time()
    ckpt = load_checkpoint(path)
    load = (1000 * (time.perf_counter() - w), 1000 * (time.process_time() - c))
    model = ckpt.model
    rows = [("file size", f"{path.stat().st_size / 2**20:.2f} MiB"),
            ("load (read, checks, freeze)", f"{load[0]:.0f} ms wall, {load[1]:.0f} ms CPU")]
    w = time.perf_counter()
    model.conditioned(3, 0)
    rows.append(("first use of a condition (its view)",
                 f"{1000 * (time.perf_counter() - w):.2f} ms"))

    def sample(m) -> None:
        drive(m, [sampler(m, 1000, torch.Generator().manual_seed(0))])

    ops = {
        "era of 1 name (28 conditions)": lambda: era.eras(model, NAMES[:1], "records"),
        "era of 20 names (a score page)": lambda: era.eras(model, NAMES, "records"),
        "sample n=1000, no condition": lambda: sample(model),
        "sample n=1000, 1920s girls": lambda: sample(model.conditioned(4, 0)),
    }
    for label, fn in ops.items():
        wall, cpu = timed(fn, args.runs)
        rows.append((label, f"{wall:.1f} ms wall, {cpu:.1f} ms CPU (median of {args.runs})"))
    print(f"| {path.name}: what | figure |\n| --- | --- |")
    for label, figure in rows:
        print(f"| {label} | {figure} |")


if __name__ == "__main__":
    main()
