"""Names per second for constrained sampling against unconstrained, each shipped kind (issue 26).

    python bench/bench_constraints.py [--models-dir models] [--rounds 3] [--n 1000]

For each shipped model, in the same run and interleaved round by round (a slow minute on this
shared machine hits every case alike): names per second of `services.sample_names` (what the
API, the pages and the CLI call) with n names and
- no constraint (the baseline),
- `suffix=a` (common), and
- `suffix=lyn` (rare),
each at a fixed seed, with no deadline (as the CLI samples) and the draws bound raised so that
every case returns its n names. Printed per model and case: the best round's names/s, the draws
taken, the mass that fits and the ratio of the names/s to the unconstrained case's. The issue's
target: the bigram's exact sampler within 2x of unconstrained for both suffixes (ratio >= 0.5);
exit status 1 if it misses. One torch thread, as the server's model thread runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app import services  # noqa: E402
from app.checkpoints import load_checkpoint  # noqa: E402
from app.params import CLISampleParams  # noqa: E402
from app.registry import LoadedModel  # noqa: E402

MODELS = ["bigram", "neural-bigram", "mlp", "wavenet", "transformer"]
CASES = {"unconstrained": {}, "suffix=a": {"suffix": "a"}, "suffix=lyn": {"suffix": "lyn"}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models-dir", default=str(ROOT / "models"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--n", type=int, default=1000)
    args = ap.parse_args()
    torch.set_num_threads(1)
    services.MAX_CONSTRAINED_DRAWS = 10**7  # every case gets its n names: speed, not the bound
    models = {name: LoadedModel.from_checkpoint(
        load_checkpoint(Path(args.models_dir) / f"{name}.safetensors")) for name in MODELS}
    for m in models.values():
        services.sample_names(m, CLISampleParams(n=10, seed=0, suffix="lyn"))  # warm up
    best: dict[tuple[str, str], float] = {}
    info: dict[tuple[str, str], services.SampleResult] = {}
    for _ in range(args.rounds):
        for name, m in models.items():
            for case, extra in CASES.items():
                p = CLISampleParams(n=args.n, seed=1, **extra)
                t = time.perf_counter()
                r = services.sample_names(m, p)
                rate = len(r.names) / (time.perf_counter() - t)
                best[name, case] = max(best.get((name, case), 0.0), rate)
                info[name, case] = r
    print(f"n={args.n}, best of {args.rounds} rounds, torch threads=1, torch {torch.__version__}")
    print(f"{'model':<14} {'case':<14} {'names/s':>10} {'draws':>9} {'mass':>9} "
          f"{'exact':>5} {'vs unconstrained':>16}")
    ok = True
    for name in models:
        base = best[name, "unconstrained"]
        for case in CASES:
            r, rate = info[name, case], best[name, case]
            ratio = rate / base
            mass = "-" if r.constraint_mass is None else f"{r.constraint_mass:.4f}"
            print(f"{name:<14} {case:<14} {rate:10,.0f} {r.drawn:9,} {mass:>9} "
                  f"{'yes' if r.mass_exact else 'no':>5} {ratio:16.2f}")
            if name == "bigram" and case != "unconstrained" and ratio < 0.5:
                ok = False
    print("target: the bigram's exact sampler within 2x of unconstrained for both suffixes:",
          "met" if ok else "MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
