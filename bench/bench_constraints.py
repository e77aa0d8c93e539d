"""Names per second for constrained sampling against unconstrained, each shipped kind (issue 26).

    python bench/bench_constraints.py [--models-dir models] [--rounds 5] [--n 1000]
                                      [--n-exact 20000]

For each shipped model, in the same run and interleaved round by round (a slow minute on this
shared machine hits every case alike): names per second of `services.sample_names` (what the
API, the pages and the CLI call) with n names and
- no constraint (the baseline),
- `suffix=a` (common), and
- `suffix=lyn` (rare),
each at a fixed seed, with no deadline (as the CLI samples) and the draws bound raised so that
every case returns its n names. The kinds sampled exactly (the bigram, the neural bigram) draw
--n-exact names a call: 1,000 of them took 6-35 ms, too short to time on a shared machine (one
run's ratio read 0.46 for the same code that reads 1.5-2 on others). Each call is timed by the
wall clock and by the process's CPU time: with one torch thread the CPU time is the call's own
work, which the other jobs on the machine slow much less than the wall clock. Printed per model
and case: names per second (the best round's, wall clock; the median round's; the best round's
by CPU time), the draws taken, the mass that fits, and the ratio of the best names per CPU
second to the unconstrained case's (and by the wall clock). The issue's target: the bigram's
exact sampler within 2x of unconstrained for both suffixes (CPU ratio >= 0.5); exit status 1
if it misses. One torch thread, as the server's model thread runs. The load average is
printed before and after.
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
from app.domain.params import CLISampleParams  # noqa: E402
from app.lm.sampling import exact_kind  # noqa: E402
from app.store.checkpoints import load_checkpoint  # noqa: E402
from app.store.registry import LoadedModel  # noqa: E402

MODELS = ["bigram", "neural-bigram", "mlp", "wavenet", "transformer"]
CASES = {"unconstrained": {}, "suffix=a": {"suffix": "a"}, "suffix=lyn": {"suffix": "lyn"}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models-dir", default=str(ROOT / "models"))
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--n", type=int, default=1000, help="names a call, rejection kinds")
    ap.add_argument("--n-exact", type=int, default=20_000, help="names a call, exact kinds")
    args = ap.parse_args()
    torch.set_num_threads(1)
    services.MAX_CONSTRAINED_DRAWS = 10**7  # every case gets its n names: speed, not the bound
    models = {name: LoadedModel.from_checkpoint(
        load_checkpoint(Path(args.models_dir) / f"{name}.safetensors")) for name in MODELS}
    sizes = {name: args.n_exact if exact_kind(m.model) else args.n for name, m in models.items()}
    for m in models.values():
        services.sample_names(m, CLISampleParams(n=10, seed=0, suffix="lyn"))  # warm up
    load_before = os.getloadavg()
    rates: dict[tuple[str, str], list[float]] = {}  # names per wall-clock second
    cpu_rates: dict[tuple[str, str], list[float]] = {}  # names per CPU second
    info: dict[tuple[str, str], services.SampleResult] = {}
    for _ in range(args.rounds):
        for name, m in models.items():
            for case, extra in CASES.items():
                p = CLISampleParams(n=sizes[name], seed=1, **extra)
                t, cpu = time.perf_counter(), time.process_time()
                r = services.sample_names(m, p)
                rates.setdefault((name, case), []).append(
                    len(r.names) / (time.perf_counter() - t))
                cpu_rates.setdefault((name, case), []).append(
                    len(r.names) / max(time.process_time() - cpu, 1e-6))
                info[name, case] = r
    print(f"best and median of {args.rounds} interleaved rounds, torch threads=1, torch "
          f"{torch.__version__}, load average {load(load_before)} before, "
          f"{load(os.getloadavg())} after")
    print("names/s: by the wall clock (best and median round) and by CPU time (best round); "
          "ratio: to the same kind's unconstrained names/s")
    print(f"{'model':<14} {'case':<14} {'n':>6} {'wall best':>10} {'median':>9} "
          f"{'CPU best':>9} {'draws':>8} {'mass':>7} {'exact':>5} {'ratio CPU':>9} "
          f"{'wall':>6}")
    ok = True
    for name in models:
        base, cpu_base = max(rates[name, "unconstrained"]), max(cpu_rates[name, "unconstrained"])
        for case in CASES:
            r, best, cpu = info[name, case], max(rates[name, case]), max(cpu_rates[name, case])
            mass = "-" if r.constraint_mass is None else f"{r.constraint_mass:.4f}"
            print(f"{name:<14} {case:<14} {sizes[name]:6,} {best:10,.0f} "
                  f"{statistics.median(rates[name, case]):9,.0f} {cpu:9,.0f} {r.drawn:8,} "
                  f"{mass:>7} {'yes' if r.mass_exact else 'no':>5} {cpu / cpu_base:9.2f} "
                  f"{best / base:6.2f}")
            if name == "bigram" and case != "unconstrained" and cpu / cpu_base < 0.5:
                ok = False
    print("target: the bigram's exact sampler within 2x of unconstrained for both suffixes:",
          "met" if ok else "MISSED")
    return 0 if ok else 1


def load(avg: tuple[float, float, float]) -> str:
    return "/".join(f"{x:.1f}" for x in avg)


if __name__ == "__main__":
    sys.exit(main())
