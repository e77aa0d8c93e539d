"""`namelab train | sample | score | eval | serve`: the command line.

Every error is one line on stderr and exit status 1 (argparse's usage errors: status 2).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from dataclasses import fields
from pathlib import Path

from app.data import DEFAULT_SPEC, DataError

# app.config's DEFAULT_MODELS_DIR, without importing pydantic-settings for every --help (the CLI
# imports torch and pydantic only in the commands that need them: `namelab --help` stays fast;
# tests/test_cli.py checks the two agree)
DEFAULT_MODELS_DIR = Path(__file__).resolve().parents[1] / "models"

EXAMPLES = {
    "train": """examples:
  namelab train --model bigram                       # models/bigram.safetensors, data ssa:2017
  namelab train --model mlp --steps 2000 --name quick
  namelab train --model neural-bigram --reg 0 --steps 2000
  namelab train --model bigram --data ssa:1920-1929 --name bigram-1920s
  namelab train --model bigram --data names.txt --smoothing 0 --split none""",
    "sample": """examples:
  namelab sample --model mlp -n 10 --seed 42
  namelab sample --model mlp -n 5 --seed 42 --prefix an --temperature 0.8 --top-k 5
  namelab sample --model models/bigram -n 5 --max-len 4""",
    "score": """examples:
  namelab score --model mlp emma xqzvk
  namelab score --model bigram --details José
  namelab score --model mlp r2d2 emma     # scores emma, reports r2d2, exit status 1""",
    "eval": """examples:
  namelab eval --model mlp                           # its own data's val and test split
  namelab eval --model mlp --split test --json
  namelab eval --model mlp --data ssa:2016 --split all
  namelab eval --model /tmp/m --data names.txt --split val""",
    "serve": """examples:
  namelab serve
  namelab serve --port 8080 --models-dir models
  NAMELAB_MAX_BODY_BYTES=16384 namelab serve --host 0.0.0.0 --workers 2""",
}

MLP_HELP = {
    "block_size": "characters of context",
    "n_embd": "embedding dimensions per character",
    "n_hidden": "units per hidden layer",
    "n_layers": "hidden tanh layers",
    "dropout": "dropout after each hidden layer",
    "batch_size": "minibatch size",
    "lr_min": "learning rate at the end of the cosine decay",
    "warmup": "linear warm-up steps",
    "weight_decay": "AdamW weight decay",
    "eval_interval": "steps between validation passes",
    "device": "torch device",
}


class CLIError(Exception):
    """An error to print as one line."""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(training="train" in argv)
    args = parser.parse_args(argv)
    try:
        return args.func(args) or 0
    except (CLIError, DataError, ValueError, FileNotFoundError) as e:
        print(f"namelab {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"namelab {args.command}: interrupted", file=sys.stderr)
        return 130


def build_parser(training: bool = True) -> argparse.ArgumentParser:
    """The parser; `training=False` leaves out train's hyperparameter flags, which are read off
    the config dataclasses and so need torch (a second or more to import)."""
    parser = argparse.ArgumentParser(
        prog="namelab", description="Character-level language models of first names."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str, func) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help, epilog=EXAMPLES[name],
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.set_defaults(func=func)
        return p

    p = command("train", "train a model and write a checkpoint", cmd_train)
    p.add_argument("--model", required=True, choices=["bigram", "neural-bigram", "mlp"])
    p.add_argument("--data", default=DEFAULT_SPEC,
                   help="ssa:YEAR, ssa:FIRST-LAST, optionally :F or :M, or a text file "
                        "(default %(default)s)")
    p.add_argument("--out", default=str(DEFAULT_MODELS_DIR), help="folder (default models/)")
    p.add_argument("--name", help="checkpoint name (default: the model type)")
    p.add_argument("--split", choices=["standard", "none"], default="standard",
                   help="80/10/10 train/val/test, or train on every word")
    p.add_argument("--split-seed", type=int, default=42, help="seed of the split shuffle")
    p.add_argument("--smoothing", type=float, default=1.0, help="bigram: additive smoothing")
    p.add_argument("--reg", type=float, default=None,
                   help="neural-bigram: L2 penalty on W (default 0.001)")
    p.add_argument("--steps", type=int, help="optimisation steps (mlp 9000, neural-bigram 300)")
    p.add_argument("--lr", type=float, help="peak learning rate (mlp 5e-3, neural-bigram 0.5)")
    p.add_argument("--seed", type=int, help="init/minibatch seed")
    g = p.add_argument_group("mlp hyperparameters")
    for cls in _configs() if training else ():
        for f in fields(cls):
            if f.name in ("steps", "lr", "seed"):
                continue
            g.add_argument("--" + f.name.replace("_", "-"), type=type(f.default), default=None,
                           help=f"{MLP_HELP.get(f.name, f.name)} (default {f.default})")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    model_help = "checkpoint path (DIR/NAME, with or without .safetensors) or a model name " \
                 "in --models-dir"
    p = command("sample", "sample names from a model", cmd_sample)
    p.add_argument("--model", required=True, help=model_help)
    p.add_argument("--models-dir", default=str(DEFAULT_MODELS_DIR))
    p.add_argument("-n", type=int, default=10, help="how many names (default 10)")
    p.add_argument("--seed", type=int, help="seed (default: drawn at random and printed)")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-k", type=int, help="sample only among the k most likely letters")
    p.add_argument("--prefix", default="", help="letters every name starts with")
    p.add_argument("--max-len", type=int, default=32, help="at most this many letters")

    p = command("score", "score names under a model", cmd_score)
    p.add_argument("--model", required=True, help=model_help)
    p.add_argument("--models-dir", default=str(DEFAULT_MODELS_DIR))
    p.add_argument("--details", action="store_true", help="the probability of every letter")
    p.add_argument("names", nargs="+", metavar="NAME")

    p = command("eval", "average NLL per character over a dataset", cmd_eval)
    p.add_argument("--model", required=True, help=model_help)
    p.add_argument("--models-dir", default=str(DEFAULT_MODELS_DIR))
    p.add_argument("--data", help="dataset spec or text file (default: the one the model was "
                                  "trained on, as its checkpoint records it)")
    p.add_argument("--split", choices=["train", "val", "test", "all"], action="append",
                   help="the checkpoint's own split of the data, recomputed (its seed, 80/10/10),"
                        " or all of it; repeatable (default: val and test of the model's own "
                        "data, all of the data given by --data)")
    p.add_argument("--json", action="store_true", help="print one JSON object per split")

    p = command("serve", "start the web app", cmd_serve)
    p.add_argument("--host", help="default: NAMELAB_HOST, else 127.0.0.1")
    p.add_argument("--port", type=int, help="default: NAMELAB_PORT, else 8000")
    p.add_argument("--models-dir", help="default: NAMELAB_MODELS_DIR, else models/")
    p.add_argument("--workers", type=int,
                   help="worker processes (default: NAMELAB_WORKERS, else 1)")
    return parser


def _configs() -> tuple:
    from app.lm import MLPConfig
    from app.lm.train import OptimConfig

    return MLPConfig, OptimConfig


def resolve_model(arg: str, models_dir: str) -> Path:
    """A checkpoint path as `train` wrote it (with or without .safetensors), or a model name."""
    from app.checkpoints import SUFFIX

    candidates = [Path(arg), Path(arg + SUFFIX), Path(models_dir) / (arg + SUFFIX)]
    for c in candidates:
        if c.is_file():
            return c
    folder = Path(models_dir)
    found = sorted(p.name.removesuffix(SUFFIX) for p in folder.glob("*" + SUFFIX)) \
        if folder.is_dir() else []
    available = (f"models in {folder}: {', '.join(found)}" if found
                 else f"no checkpoints in {folder}")
    raise CLIError(f"no checkpoint {arg!r}: tried {', '.join(str(c) for c in candidates)}; "
                   f"{available}")


def load(args):
    from app.checkpoints import CheckpointError, load_checkpoint

    try:
        return load_checkpoint(resolve_model(args.model, args.models_dir))
    except CheckpointError as e:
        raise CLIError(str(e)) from None


def _interrupt(signum, frame):
    raise KeyboardInterrupt  # SIGTERM (kill, docker stop) unwinds like Ctrl-C: temp files go


def cmd_train(args) -> int:
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return _train(args)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _train(args) -> int:
    from tqdm import tqdm

    from app.lm import MLPConfig
    from app.lm.train import NeuralBigramConfig, OptimConfig
    from app.training import train_to_checkpoint

    def pick(cls, **extra):
        values = {f.name: getattr(args, f.name, None) for f in fields(cls)}
        values.update(extra)
        return cls(**{k: v for k, v in values.items() if v is not None})

    common = {"steps": args.steps, "lr": args.lr, "seed": args.seed}
    mlp = pick(MLPConfig) if args.model == "mlp" else None
    optim = pick(OptimConfig, **common) if args.model == "mlp" else None
    neural = pick(NeuralBigramConfig, **common, reg=args.reg) \
        if args.model == "neural-bigram" else None
    bar = None

    def progress(step: int, total: int, postfix: dict) -> None:
        nonlocal bar
        if args.quiet:
            return
        if bar is None:
            bar = tqdm(total=total, desc=f"train {args.model}", unit="step", dynamic_ncols=True)
        bar.update(step - bar.n)
        bar.set_postfix({k: f"{v:.4f}" for k, v in postfix.items()}, refresh=False)

    try:
        result = train_to_checkpoint(
            args.model, args.data, args.out, args.name or args.model,
            split_seed=None if args.split == "none" else args.split_seed,
            smoothing=args.smoothing, mlp=mlp, optim=optim, neural=neural, progress=progress,
        )
    finally:
        if bar is not None:
            bar.close()
    meta = result.meta
    print(f"wrote {result.path}  ({meta.model_type}, {meta.n_params:,} parameters, "
          f"{meta.dataset.n_words:,} words of {meta.dataset.spec}, "
          f"{meta.training_seconds:.1f} s)")
    print(f"{'split':<6} {'words':>7} {'NLL':>8}")
    for split, n, nll in (("train", meta.split.n_train, meta.metrics.train_nll),
                          ("val", meta.split.n_val, meta.metrics.val_nll),
                          ("test", meta.split.n_test, meta.metrics.test_nll)):
        print(f"{split:<6} {n:>7,} {'-' if nll is None else f'{nll:.4f}':>8}")
    return 0


def cmd_sample(args) -> int:
    import secrets

    import torch

    from app.lm.sampling import sample_scored

    ckpt = load(args)
    vocab = ckpt.model.vocab
    prefix = vocab.normalize(args.prefix, what="prefix", allow_empty=True)
    seed = args.seed if args.seed is not None else secrets.randbelow(2**32)
    if not 0 <= seed < 2**32:
        raise CLIError(f"--seed must be between 0 and 2^32-1, got {seed}")
    if args.n < 1 or args.n > 100_000:
        raise CLIError(f"-n must be between 1 and 100000, got {args.n}")
    names, lps = sample_scored(ckpt.model, args.n, torch.Generator().manual_seed(seed),
                               temperature=args.temperature, top_k=args.top_k, prefix=prefix,
                               max_len=args.max_len)
    training = set(ckpt.training_names)
    print(f"# {ckpt.name}: {args.n} names, seed {seed}")
    print(f"{'name':<20} {'log P':>9}  in training")
    for name, lp in zip(names, lps, strict=True):
        print(f"{name:<20} {lp:9.3f}  {'yes' if name in training else 'no'}")
    return 0


def cmd_score(args) -> int:
    from app.lm.scoring import score_names
    from app.lm.vocab import InvalidName
    from app.registry import plausibility_of

    ckpt = load(args)
    good, bad = [], []  # like the score page: every name that can be scored is, the rest named
    for raw in args.names:
        try:
            good.append(ckpt.model.vocab.normalize(raw))
        except InvalidName as e:
            bad.append(str(e))
    plaus = plausibility_of(ckpt)
    training = set(ckpt.training_names)
    if good:
        print(f"{'name':<20} {'log P':>9} {'NLL/char':>9} {'plausible':>9}  in training")
    for s in score_names(ckpt.model, good):
        pct = plaus.percentile(s.nll_per_char)
        pct_text = "n/a" if pct is None else f"{pct:.1f}%"
        print(f"{s.name:<20} {s.log_prob:9.3f} {s.nll_per_char:9.4f} {pct_text:>9}  "
              f"{'yes' if s.name in training else 'no'}")
        if args.details:
            for st in s.steps:
                print(f"    P({st['char']!r} | {st['context']!r}) = {st['prob']:.4f}"
                      f"   log {st['log_prob']:8.3f}   rank {st['rank']}")
    if good and not plaus.available:
        print(f"plausibility n/a: {plaus.reason}")
    elif good:
        print(f"plausible: the share of {plaus.n_names:,} held-out names (validation names the "
              f"model never trained on) with a worse NLL per character")
    for message in bad:
        print(f"namelab score: error: {message}", file=sys.stderr)
    return 1 if bad else 0


def cmd_eval(args) -> int:
    from app.data import load_dataset, split_words
    from app.lm.train import evaluate

    ckpt = load(args)
    meta = ckpt.meta
    dataset = load_dataset(args.data or meta.dataset.spec)
    splits = args.split or (["all"] if args.data else ["val", "test"])
    if set(splits) != {"all"}:  # the checkpoint's own split: only of the data it was trained on
        if dataset.sha256 != meta.dataset.sha256:
            raise CLIError(f"{dataset.spec!r} is not the data {ckpt.name} was trained on "
                           f"({meta.dataset.spec!r}, {meta.dataset.n_words:,} words): its "
                           f"split would not be the model's; use --split all")
        if meta.split.seed is None and set(splits) - {"train", "all"}:
            raise CLIError(f"{ckpt.name} was trained on all of its data (no split): "
                           f"use --split all")
    parts = split_words(dataset.words, meta.split.seed)
    results = {}
    for name in dict.fromkeys(splits):
        words = dataset.words if name == "all" else getattr(parts, name)
        for w in dict.fromkeys(words):
            ckpt.model.vocab.check(w, what=f"word in {dataset.spec}")
        results[name] = {"model": ckpt.name, "data": dataset.spec, "split": name,
                         "nll": evaluate(ckpt.model, words), "n_words": len(words),
                         "n_chars": sum(len(w) + 1 for w in words)}
    if args.json:
        for r in results.values():
            print(json.dumps(r))
    else:
        print(f"{ckpt.name} on {dataset.spec}: NLL in nats per character, end token included")
        print(f"{'split':<6} {'words':>7} {'chars':>9} {'NLL':>8}")
        for name, r in results.items():
            print(f"{name:<6} {r['n_words']:>7,} {r['n_chars']:>9,} {r['nll']:>8.5f}")
    return 0


def cmd_serve(args) -> int:
    import os

    import uvicorn

    from app.config import Settings
    from app.main import NoModels, create_app, load_registry

    given = {"models_dir": args.models_dir, "host": args.host, "port": args.port,
             "workers": args.workers}
    settings = Settings(**{k: v for k, v in given.items() if v is not None})  # others: env
    # access_log off: the app logs every request itself, as JSON (app/middleware.py).
    common = {"host": settings.host, "port": settings.port, "log_level": settings.log_level,
              "access_log": False, "timeout_keep_alive": settings.keep_alive_seconds}
    if settings.workers == 1:
        uvicorn.run(create_app(settings), **common)  # exits with status 3 if start-up fails
        return 0
    try:
        load_registry(settings)  # fail here, once, with status 1: a worker failing to start
    except NoModels as e:  # would stop uvicorn's supervisor with status 0
        raise CLIError(str(e)) from None
    os.environ["NAMELAB_MODELS_DIR"] = str(settings.models_dir.resolve())  # read by the workers
    uvicorn.run("app.main:create_app", factory=True, workers=settings.workers, **common)
    return 0


if __name__ == "__main__":
    sys.exit(main())
