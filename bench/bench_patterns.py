"""Compiling patterns (issue 26): how long a pattern takes to compile, or to be refused.

    python bench/bench_patterns.py [--repeat 3]

For each pattern (the audit's three nested repeats, which took 10-33 s to refuse before the
bound of work, other costly ones, and the largest patterns that compile) over the letters a-z:
the outcome (the automaton's states, or the refusal), the steps of work it spent (what
MAX_WORK bounds: a count, the same on every machine) and the best of --repeat compilations'
wall time (the cache of compiled patterns emptied before each). Exit status 1 if a refusal
took more than 2 s (generous: the bound is what makes it quick, this only watches it).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.lm import constraints  # noqa: E402
from app.lm.constraints import MAX_STATES, MAX_WORK, ConstraintError, compile_pattern  # noqa: E402
from app.lm.vocab import Vocab  # noqa: E402

PATTERNS = [
    "(a{0,50}){0,50}", "((a{0,99}){0,99}){0,99}", "([a-z]{0,30}){0,30}",  # the audit's
    "((((a?){9}){9}){9}){9}", ".*a.{20}", ".{0,64}a.{0,20}", "(.?){64}(.?){30}",
    ".*a.{8}", "(.*a.*){30}", "(a|b)*a(a|b){7}", "ma.*(lyn|lee)", "[a-z]{2,12}",
]
SLOW = 2.0  # seconds: a refusal slower than this fails the run


def steps(pattern: str, vocab: Vocab) -> int:
    """The steps of work compiling `pattern` spends (counted in a pass of its own)."""
    spent = [0]
    spend = constraints._Budget.spend

    def counting(self, n: int) -> None:
        spent[0] += n
        spend(self, n)

    constraints._Budget.spend = counting
    constraints._compiled.cache_clear()
    try:
        compile_pattern(pattern, vocab)
    except ConstraintError:
        pass
    finally:
        constraints._Budget.spend = spend
    return spent[0]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    vocab = Vocab("abcdefghijklmnopqrstuvwxyz")
    load = os.getloadavg()
    print(f"best of {args.repeat}, MAX_WORK={MAX_WORK:,} steps, MAX_STATES={MAX_STATES:,}, "
          f"load average {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}")
    print(f"{'pattern':<26} {'seconds':>8} {'steps':>10}  outcome")
    ok = True
    for pattern in PATTERNS:
        best, outcome = float("inf"), ""
        for _ in range(args.repeat):
            constraints._compiled.cache_clear()
            t = time.perf_counter()
            try:
                outcome = f"{compile_pattern(pattern, vocab).n_states} states"
                refused = False
            except ConstraintError as e:
                outcome, refused = f"422: {e}", True
            best = min(best, time.perf_counter() - t)
        ok = ok and not (refused and best > SLOW)
        spent = steps(pattern, vocab)
        counted = f"{spent:,}" if spent <= MAX_WORK else f">{MAX_WORK:,}"
        print(f"{pattern:<26} {best:8.3f} {counted:>10}  {outcome}")
    print(f"every refusal within {SLOW:g} s:", "yes" if ok else "NO")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
