"""What a training job may be asked: the names (a list, an uploaded file, an SSA spec), the kind,
its options and the new model's name, checked before anything is queued.

Pure functions: each takes what a request sent and returns the cleaned value or raises
BadJobInput (or TooMuchData) with a message naming the problem, so the API, the page and the
tests see the same refusals. The names are normalised as app/data.py normalises a file's and
as scoring does (app.lm.vocab.normalize_name); a line that gives no usable name is dropped and
counted with its reason, never silently. The options are the kind's config and training fields,
with the bounds their dataclasses declare (app/lm/config.py), checked by those dataclasses.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import torch

from app.config import MAX_UPLOAD_BYTES
from app.data import SSA_SPEC, DataError, load_dataset
from app.data.decades import parse_spec
from app.lm import KINDS, Kind
from app.lm.config import OptimConfig
from app.lm.vocab import MAX_NAME_LEN, Vocab, normalize_name
from app.store.checks import MAX_VOCAB
from app.store.registry import MODEL_NAME

MAX_NAMES = 200_000  # lines of a list or a file (the data of a job), at most
MIN_NAMES = 2  # usable names: a model of one name is that name
MIN_SPLIT = 10  # names for the 80/10/10 split (app/store/training.checked_split); fewer: no split
SPLIT_SEED = 42  # the split `namelab train` makes by default
# Training options a request may not set: where the job runs is the server's choice.
SERVER_OPTIONS = frozenset({"device"})


class BadJobInput(ValueError):
    """A request for a training job that cannot be run as asked (422)."""


class TooMuchData(BadJobInput):
    """More names or bytes than a job takes (413)."""


@dataclass(frozen=True)
class Names:
    """The usable names of a job's data and what was dropped on the way."""

    words: list[str]
    source: str  # for a reader: 'a list of 300 names', 'the file pets.txt', 'ssa:1990-1999:F'
    spec: str  # what the checkpoint records as its data
    n_lines: int  # lines (or list items) read, blank ones included
    dropped: dict[str, int] = field(default_factory=dict)  # reason -> lines

    def describe(self) -> dict[str, Any]:
        return {"source": self.source, "spec": self.spec, "n_lines": self.n_lines,
                "n_names": len(self.words), "n_dropped": sum(self.dropped.values()),
                "dropped": dict(self.dropped), "split": len(self.words) >= MIN_SPLIT}


def _why_unusable(name: str) -> str | None:
    if not name:
        return "no letter once normalised"
    if len(name) > MAX_NAME_LEN:
        return f"longer than {MAX_NAME_LEN} letters"
    if not all(ch.isalpha() and ch.isprintable() for ch in name):
        return "characters that are not letters (digits, punctuation, spaces)"
    return None


def clean(lines: list[str], source: str, spec: str) -> Names:
    """The usable names of `lines` (normalised; blank lines skipped, others dropped with a
    reason), refused when fewer than MIN_NAMES are left or their alphabet is too large."""
    if len(lines) > MAX_NAMES:
        raise TooMuchData(f"{source} has {len(lines):,} names; a job takes at most "
                          f"{MAX_NAMES:,}")
    words: list[str] = []
    dropped: Counter[str] = Counter()
    for line in lines:
        if not line.strip():
            dropped["blank"] += 1
            continue
        name = normalize_name(line)
        reason = _why_unusable(name)
        if reason:
            dropped[reason] += 1
        else:
            words.append(name)
    if not words and not dropped:
        raise BadJobInput(f"{source} is empty: send at least {MIN_NAMES} names")
    if len(words) < MIN_NAMES:
        raise BadJobInput(f"{source} has {len(words)} usable name{'' if len(words) == 1 else 's'}"
                          f" of {len(lines):,} lines{_dropped_text(dropped)}; a model needs at "
                          f"least {MIN_NAMES} different names")
    if len(set(words)) < MIN_NAMES:
        raise BadJobInput(f"{source} has one name only ({words[0]!r}, {len(words)} times); a "
                          f"model needs at least {MIN_NAMES} different names")
    letters = sorted(set("".join(words)))
    if len(letters) > MAX_VOCAB - 1:
        raise BadJobInput(f"the names of {source} use {len(letters)} different letters; a model "
                          f"takes at most {MAX_VOCAB - 1} (one alphabet: split the list)")
    return Names(words=words, source=source, spec=spec, n_lines=len(lines), dropped=dict(dropped))


def _dropped_text(dropped: Counter[str]) -> str:
    if not dropped:
        return ""
    return " (dropped: " + ", ".join(f"{n:,} {why}" for why, n in dropped.most_common()) + ")"


def names_from_list(items: Any) -> Names:
    """A JSON list of names."""
    if not isinstance(items, list):
        raise BadJobInput(f"names must be a list of strings, got {type(items).__name__}")
    bad = next((i for i, item in enumerate(items) if not isinstance(item, str)), None)
    if bad is not None:
        raise BadJobInput(f"names[{bad}] is {type(items[bad]).__name__}, not a string")
    return clean(items, f"the list of {len(items):,} names", "pasted names")


def names_from_file(data: bytes, filename: str | None = None) -> Names:
    """An uploaded text file: UTF-8, one name per line."""
    shown = _file_name(filename)
    source = f"the file {shown}" if shown else "the uploaded file"
    if len(data) > MAX_UPLOAD_BYTES:
        raise TooMuchData(f"{source} is {len(data):,} bytes; a job takes at most "
                          f"{MAX_UPLOAD_BYTES:,} ({MAX_UPLOAD_BYTES // 2**20} MiB)")
    if b"\0" in data:
        raise BadJobInput(f"{source} is binary (it has NUL bytes at byte {data.index(0):,}); "
                          f"send a text file, one name per line")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise BadJobInput(f"{source} is not UTF-8 text: byte {e.start:,} (line {line}) is "
                          f"{data[e.start:e.start + 1]!r}; save it as UTF-8") from None
    return clean(text.splitlines(), source, shown or "uploaded names")


def _file_name(filename: str | None) -> str:
    """The upload's base name, printable and short (it is shown and recorded), or ''."""
    base = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in base if ch.isprintable())[:64]
    return base.strip()


def names_from_spec(spec: str) -> Names:
    """A slice of the SSA records, `ssa:1990-1999:F` (app/data.py); never a path: a server reads
    no file a request names."""
    spec = spec.strip() if isinstance(spec, str) else spec
    if not isinstance(spec, str) or not SSA_SPEC.fullmatch(spec):
        raise BadJobInput(f"dataset {spec!r} is not an SSA spec: use ssa:YEAR or ssa:FIRST-LAST, "
                          f"optionally :F or :M (e.g. ssa:1990-1999:F); send other names as a "
                          f"list or a file")
    if parse_spec(spec):
        raise BadJobInput(f"dataset {spec!r} is the records by decade and sex, for a kind "
                          f"conditioned on them (`namelab train`); here use ssa:YEAR or "
                          f"ssa:FIRST-LAST, optionally :F or :M")
    try:
        words = load_dataset(spec).words
    except DataError as e:
        raise BadJobInput(f"{e} (no records)" if "empty" in str(e) else str(e)) from None
    return clean(words, spec, spec)


# The kinds a job trains: a kind conditioned on decade and sex learns from the records by decade
# (ssa:1880-2017:decades), which a list of names does not carry.
TRAINABLE = {name: kind for name, kind in KINDS.items() if not kind.has_conditions}


def check_kind(name: Any) -> Kind:
    if isinstance(name, str) and name in KINDS and name not in TRAINABLE:
        raise BadJobInput(f"kind {name!r} learns from the SSA records by decade and sex, not "
                          f"from a list of names: train it with `namelab train --model {name}`; "
                          f"here use {', '.join(TRAINABLE)}")
    if not isinstance(name, str) or name not in TRAINABLE:
        raise BadJobInput(f"unknown kind {name!r}; use {', '.join(TRAINABLE)}")
    return KINDS[name]


def check_model_name(name: Any) -> str:
    """The new model's name: the registry's rule for a checkpoint's file name."""
    if not isinstance(name, str) or not MODEL_NAME.fullmatch(name):
        raise BadJobInput(f"model name {str(name)[:80]!r} is not allowed: a name is 1-64 of a-z, "
                          f"0-9, '_', '.', '-', starting with a letter or digit")
    return name


def option_names(kind: Kind) -> list[str]:
    """The options a request may set for `kind`: its config's fields, then its training's."""
    names = [f.name for f in fields(kind.config)]
    if not kind.trains_by_counting:
        names += [f.name for f in fields(OptimConfig) if f.name not in SERVER_OPTIONS]
    return names


def form_options(kind: Kind, values: dict[str, str]) -> dict[str, Any]:
    """A form's text values as the types of the kind's defaults (as the CLI's flags read them);
    blank ones left out (the default)."""
    defaults = {f.name: f.default for f in fields(kind.config)}
    if not kind.trains_by_counting:
        defaults.update({f.name: getattr(kind.training, f.name) for f in fields(OptimConfig)})
    out: dict[str, Any] = {}
    for key, text in values.items():
        if key not in defaults or not str(text).strip():
            out[key] = text  # unknown ones are refused by check_options, naming them
            continue
        want = type(defaults[key])
        try:
            out[key] = want(str(text).strip())
        except ValueError:
            raise BadJobInput(f"option {key} must be {want.__name__}, got {text!r}") from None
    return {k: v for k, v in out.items() if not (isinstance(v, str) and not v.strip())}


@dataclass(frozen=True)
class Options:
    config: Any
    training: OptimConfig | None

    @property
    def steps(self) -> int:
        return self.training.steps if self.training else 0

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self.config)
        if self.training:
            out.update({k: v for k, v in asdict(self.training).items()
                        if k not in SERVER_OPTIONS})
        return out


def check_options(kind: Kind, options: Any, max_steps: int, max_params: int,
                  vocab_size: int = MAX_VOCAB) -> Options:
    """The kind's config and training from a request's options, each checked against the bounds
    its field declares; steps against the server's cap; the model's size against the largest a
    server loads (counted on the meta device: no memory)."""
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise BadJobInput(f"options must be an object, got {type(options).__name__}")
    allowed = option_names(kind)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise BadJobInput(f"unknown option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
                          f"for {kind.name}; its options: {', '.join(allowed) or 'none'}")
    try:
        built = split_options(kind, options)
    except (TypeError, ValueError) as e:
        raise BadJobInput(f"{kind.name}: {e}") from None
    config, training = built.config, built.training
    if training is not None and training.steps > max_steps:
        raise BadJobInput(f"steps must be <= {max_steps:,} on this server "
                          f"(NAMELAB_TRAIN_MAX_STEPS), got {training.steps:,}")
    letters = "".join(chr(0x4E00 + i) for i in range(vocab_size - 1))  # any, sorted
    with torch.device("meta"):
        n_params = kind.build(Vocab(letters), config).n_params
    if n_params > max_params:
        raise BadJobInput(f"{kind.name} with these options has {n_params:,} parameters; a "
                          f"server loads at most {max_params:,} (NAMELAB_MAX_MODEL_PARAMS)")
    return built


def split_options(kind: Kind, options: dict[str, Any]) -> Options:
    """The config and training of `kind` from one dict of options (TypeError/ValueError from
    the dataclasses' own checks); the job process rebuilds its options with it."""
    config_keys = {f.name for f in fields(kind.config)}
    config = kind.config(**{k: v for k, v in options.items() if k in config_keys})
    training = None if kind.trains_by_counting else replace(
        kind.training, **{k: v for k, v in options.items() if k not in config_keys})
    return Options(config=config, training=training)
