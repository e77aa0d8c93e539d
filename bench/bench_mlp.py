"""Benchmark: train the MLP on names.txt with the default config (or overrides) and report
wall time, train/val/test NLL (nats/char, end token included) and seconds per 1000 steps.

    PYTHONPATH=. python bench/bench_mlp.py                      # the defaults
    PYTHONPATH=. python bench/bench_mlp.py --steps 20000 --n-hidden 384 --threads 1

Every field of MLPConfig and OptimConfig can be overridden as --field-name VALUE.
This is a benchmark, not a test: it skips (exit 0) when the data file is absent.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import torch

from app.data import load_dataset, split_words
from app.lm.mlp import MLPConfig
from app.lm.train import OptimConfig, evaluate, train_mlp
from app.lm.vocab import Vocab

# the classic names.txt beside the checkout (../shared/data), never part of the repository
DEFAULT_DATA = str(Path(__file__).resolve().parents[2] / "shared" / "data" / "names.txt")


def _add_fields(parser: argparse.ArgumentParser, cls: type) -> None:
    group = parser.add_argument_group(cls.__name__)
    for f in dataclasses.fields(cls):
        default = f.default
        kind = type(default) if default is not dataclasses.MISSING else str
        group.add_argument("--" + f.name.replace("_", "-"), dest=f.name, type=kind, default=None,
                           help=f"default {default!r}")


def _overrides(args: argparse.Namespace, cls: type) -> dict:
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(cls)
            if getattr(args, f.name) is not None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("NAMELAB_NAMES", DEFAULT_DATA),
                        help=f"names file, one per line (default {DEFAULT_DATA})")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads (default: torch's own default)")
    parser.add_argument("--curve", action="store_true",
                        help="print each evaluation point as it happens")
    parser.add_argument("--json", action="store_true", help="also print one JSON line")
    _add_fields(parser, MLPConfig)
    _add_fields(parser, OptimConfig)
    args = parser.parse_args(argv)

    if not os.path.isfile(args.data):
        print(f"SKIP: data file {args.data!r} not found (pass --data PATH)")
        return 0
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    cfg = MLPConfig(**_overrides(args, MLPConfig))
    opt_cfg = OptimConfig(**_overrides(args, OptimConfig))
    words = load_dataset(args.data).words
    split = split_words(words)
    vocab = Vocab.from_words(words)

    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"data {args.data} ({len(words)} names)")
    print(f"MLPConfig:   {dataclasses.asdict(cfg)}")
    print(f"OptimConfig: {dataclasses.asdict(opt_cfg)}")
    sys.stdout.flush()

    t0, c0 = time.perf_counter(), time.process_time()
    progress = None
    if args.curve:
        def progress(step: int, total: int, postfix: dict[str, float]) -> None:
            if "val" in postfix:  # an evaluation point; printed as it happens
                print(f"  step {step:6d}/{total}  train(running) {postfix['loss']:.4f}  "
                      f"val {postfix['val']:.4f}  [{time.perf_counter() - t0:.0f} s]", flush=True)
    model, history = train_mlp(vocab, split, cfg, opt_cfg, progress)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0

    train_nll = evaluate(model, split.train)
    val_nll = evaluate(model, split.val)
    test_nll = evaluate(model, split.test)
    best_step = None
    vals = [(v, s) for s, v in zip(history.step, history.val, strict=True) if v is not None]
    if vals:
        best_step = min(vals)[1]
    result = {
        "params": model.n_params,
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "s_per_1k_steps": round(1000 * wall / opt_cfg.steps, 2),
        "train_nll": round(train_nll, 4),
        "val_nll": round(val_nll, 4),
        "test_nll": round(test_nll, 4),
        "best_step": best_step,
    }
    print(f"params {result['params']:,}  wall {wall:.1f} s  cpu {cpu:.1f} s  "
          f"({result['s_per_1k_steps']:.2f} s / 1000 steps, best-on-val at step {best_step})")
    print(f"NLL nats/char: train {train_nll:.4f}  val {val_nll:.4f}  test {test_nll:.4f}")
    if args.json:
        print(json.dumps({"mlp": dataclasses.asdict(cfg), "optim": dataclasses.asdict(opt_cfg),
                          "threads": torch.get_num_threads(), **result}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
