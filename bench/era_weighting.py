"""The era model's examples weighted by births**w (issue 27): a short run of each w, then what
the weighting changes for users (the era check, a few names' most likely decade) and whether
the model still beats each decade's bigram.

    OMP_NUM_THREADS=1 python bench/era_weighting.py [--weights 0 0.5 1] [--steps 4000]

Each run is `namelab train --model conditional --data ssa:1880-2017:decades --births-weight W
--steps STEPS` (the kind's other defaults, warm-up 500 as the shipped run), into a temporary
folder. Prints one markdown table: per w, the era check (top-1, top-3, mean absolute error in
decades) under the records' prior and the uniform one, the smallest margin over the per-decade
bigram on validation NLL (per example), and for each name the most likely decade and its
probability (records' prior, sexes summed).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

NAMES = ["mildred", "jayden", "emma", "linda", "ashley", "brittany", "ethel", "aiden"]
SPEC = "ssa:1880-2017:decades"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", type=float, nargs="*", default=[0.0, 0.5, 1.0],
                        help="none: only the records' row")
    parser.add_argument("--steps", type=int, default=4000)
    args = parser.parse_args()

    from app.data import load_dataset, split_words
    from app.data.decades import DECADES, decade_data, parse_spec
    from app.domain import era
    from app.lm import KINDS
    from app.store.training import train_to_checkpoint

    kind = KINDS["conditional"]
    parts = split_words(load_dataset(SPEC).words, 42)
    held = decade_data(*parse_spec(SPEC)).held_out
    print(f"| births**w | era check, records' prior: top-1 / top-3 / MAE | uniform prior | "
          f"worst margin over the decade bigram (val NLL) | "
          f"{' | '.join(NAMES)} |")
    print("| --- " * (4 + len(NAMES)) + "|")
    print(f"| the records: each name's births, share of the most common decade | | | | "
          f"{' | '.join(records_decade(name) for name in NAMES)} |", flush=True)
    for w in args.weights:
        with tempfile.TemporaryDirectory() as out:
            result = train_to_checkpoint(
                "conditional", SPEC, out, f"era-w{w}", config=replace(kind.config(),
                                                                      births_weight=w),
                training=replace(kind.training, steps=args.steps))
        model = result.model.freeze()
        checks = [era.era_check(model, held, p) for p in era.PRIORS]
        margin = min(r.bigram_nll - r.model_nll
                     for r in era.per_decade(model, parts.train, parts.val))
        names = []
        for e in era.eras(model, NAMES, "records"):
            d = max(range(len(DECADES)), key=e.by_decade.__getitem__)
            names.append(f"{DECADES[d]}s {100 * e.by_decade[d]:.0f}%")
        cells = [f"{c.top1:.1%} / {c.top3:.1%} / {c.mae:.2f}" for c in checks]
        print(f"| {w:g} | {' | '.join(cells)} | {margin:.4f} | {' | '.join(names)} |",
              flush=True)
    if not args.weights:
        return
    c = checks[0]
    print(f"\nbaseline, always the {c.baseline_decade}s: {c.baseline_top1:.1%} / "
          f"{c.baseline_top3:.1%} / {c.baseline_mae:.2f} ({c.n_names:,} held-out names)")


def records_decade(name: str) -> str:
    """The decade of most of the name's births in the records (both sexes), and its share."""
    from app.data.decades import DECADES, decade_data

    data = decade_data(1880, 2017)
    births = [0] * len(DECADES)
    for r, n in zip(data.records, data.births, strict=True):
        if r == name:
            births[r.decade] += n
    d = max(range(len(DECADES)), key=births.__getitem__)
    return f"{DECADES[d]}s {100 * births[d] / sum(births):.0f}%"


if __name__ == "__main__":
    main()
