"""The checks a checkpoint passes before a server serves it, in the order that makes a hostile
file cost little: a bounded read of the header and its layout against the file, every number
and string of the metadata, the model's shape on the meta device against the header's tensors
and the size Limits, the memory the load needs, the weights (finite, bounded), the model's
next-letter distributions, and the training names. Every failure is a CheckpointError naming
the file and the problem. What a server accepts is bounded (MAX_* below)."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import torch
from pydantic import (
    ValidationError,
)

from app.lm import KINDS, LanguageModel, Vocab
from app.lm.vocab import MAX_NAME_LEN, normalize_name
from app.store.schema import (
    FORMAT_VERSION,
    META_KEY,
    NAMES_TENSOR,
    OTHER_NAMES_TENSOR,
    CheckpointError,
    CheckpointMeta,
    one_line,
)

FLOAT_DTYPES = {"F16", "BF16", "F32", "F64"}  # safetensors' names


DTYPE_BYTES = {"F16": 2, "BF16": 2, "F32": 4, "F64": 8, "U8": 1}  # U8: the training names only


# What a server loads, at most. Far above any model Namelab trains (the shipped MLP: 378,019
# parameters, a 2 KB header), far below what would hurt a server. The size of a model (its
# parameters, its training names, the memory its load needs) is a setting: Limits below.
MAX_HEADER_BYTES = 4 * 2**20  # the safetensors header (the metadata, loss history included)


MAX_VOCAB = 64  # symbols, '.' included: a table of V x V cells is drawn on a page


MAX_WEIGHT = 1e4  # largest weight (trained ones are below 100); counts are not weights


MAX_COUNT = 2.0**53  # largest count of a pair (a whole number a float64 holds exactly)


# The numbers of the metadata, which pages print and plot: every number at most MAX_NUMBER in
# size (a whole number a float64 holds exactly), every loss (NLL per character, nats) in
# [0, MAX_LOSS] (a uniform guess over 64 symbols is 4.2), a loss history of at most
# MAX_HISTORY points, at steps in increasing order.
MAX_NUMBER = 2.0**53


MAX_LOSS = 1000.0


MAX_HISTORY = 10_000


# Memory a load needs beyond the file: per byte of weights (the copy the model owns and its
# fast inference form), per parameter (what building and checking the fast form computes: an
# MLP's table of every short context, the probes' activations; measured at its first load, for
# models of ~2M parameters: WaveNet 235 bytes, MLP 173, Transformer 80), per training name (a
# str in a list and a frozenset). Checked against Limits.max_load_bytes (tests/
# test_checkpoints_hostile.py measures loads against it).
WEIGHT_COPIES = 3


COMPUTE_BYTES_PER_PARAM = 300


NAME_OBJECT_BYTES = 200


# Contexts whose next-letter distribution is checked at load: 4,096 letters of context in all
# (a Transformer reads every letter of a context; 4,096 contexts of 16 took it 0.8 s).
PROBE_LETTERS = 4096


@dataclass(frozen=True)
class Limits:
    """How large a checkpoint a server loads (settings NAMELAB_MAX_MODEL_PARAMS,
    NAMELAB_MAX_TRAINING_NAMES and NAMELAB_MAX_LOAD_BYTES; app/config.py). The defaults are a
    few times the largest shipped model (the MLP's 378,019 parameters; the 2010s bigram's 42,272
    training names; the MLP's load, ~126 MB by load_bytes), and a model at the first two limits
    fits in the third. All three are checked from the header, before a tensor is read."""

    max_params: int = 2_000_000
    max_training_names: int = 250_000
    max_load_bytes: int = 768 * 2**20

    @property
    def max_names_bytes(self) -> int:
        """The training names' UTF-8 bytes: each at most MAX_NAME_LEN letters of up to 4 bytes,
        and its newline."""
        return self.max_training_names * (4 * MAX_NAME_LEN + 1)


def read_header(path: Path, f: BinaryIO) -> tuple[dict, int]:
    """The safetensors header, read with a bounded read, its layout checked against the file
    (every tensor's offsets inside the data, contiguous, ending exactly at the end of the
    file), and the file's size."""
    size = os.fstat(f.fileno()).st_size
    head = f.read(8)
    if len(head) < 8:
        raise _not_safetensors(path, "truncated: no header")
    n = int.from_bytes(head, "little")
    if n > MAX_HEADER_BYTES:
        raise _not_safetensors(path, f"a header of {n:,} bytes; at most {MAX_HEADER_BYTES:,}")
    if 8 + n > size:
        raise _not_safetensors(path, "truncated header")
    raw = f.read(n)
    try:
        header = json.loads(raw)
    except (ValueError, RecursionError):
        raise _not_safetensors(path, "header is not JSON") from None
    if not isinstance(header, dict):
        raise _not_safetensors(path, "header is not a JSON object")
    extents = []
    for key, info in header.items():
        if key == "__metadata__":
            if not isinstance(info, dict) or not all(isinstance(v, str) for v in info.values()):
                raise _not_safetensors(path, "__metadata__ is not an object of strings")
            continue
        extents.append((*_extent(path, key, info), key))
    end = 0
    for start, stop, key in sorted(extents):
        if start != end:
            raise _not_safetensors(path, f"tensor {key!r} does not start where the one "
                                         f"before it ends")
        end = stop
    if 8 + n + end != size:
        raise _not_safetensors(
            path, f"the header's tensors end at byte {8 + n + end:,} but the file has "
                  f"{size:,} bytes (truncated, or data past the end)")
    return header, size


def _extent(path: Path, key: str, info: object) -> tuple[int, int]:
    """A tensor entry's (start, stop) in the data, checked against its dtype and shape."""
    if not isinstance(info, dict):
        raise _not_safetensors(path, f"tensor {key!r} is not described by an object")
    dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if dtype not in DTYPE_BYTES:
        raise CheckpointError(path, f"tensor {key!r} has dtype {dtype!r}, expected a float "
                                    f"dtype ({', '.join(k for k in DTYPE_BYTES if k != 'U8')})")
    if not (isinstance(shape, list) and len(shape) <= 8
            and all(type(d) is int and 0 <= d < 2**40 for d in shape)):
        raise _not_safetensors(path, f"tensor {key!r} has a bad shape")
    if not (isinstance(offsets, list) and len(offsets) == 2
            and all(type(o) is int for o in offsets) and 0 <= offsets[0] <= offsets[1]):
        raise _not_safetensors(path, f"tensor {key!r} has bad data_offsets")
    if offsets[1] - offsets[0] != math.prod(shape) * DTYPE_BYTES[dtype]:
        raise _not_safetensors(path, f"tensor {key!r}: its data_offsets do not fit its shape")
    return offsets[0], offsets[1]


def _not_safetensors(path: Path, why: str) -> CheckpointError:
    return CheckpointError(path, f"not a valid safetensors file ({why})")


def vocab_of(path: Path, meta: CheckpointMeta) -> Vocab:
    if len(meta.vocab) > MAX_VOCAB:
        raise CheckpointError(path, f"a vocab of {len(meta.vocab)} symbols; at most "
                                    f"{MAX_VOCAB} are served")
    # Letters only: the vocab is written into pages, tables and file downloads as it is.
    bad = [ch for ch in meta.vocab[1:] if not (ch.isalpha() and ch.isprintable())]
    if bad:
        raise CheckpointError(path, f"bad vocab: {ascii(bad[0])} is not a printable letter "
                                    f"(a vocab is '.' and letters)")
    try:
        return Vocab.from_string(meta.vocab)
    except ValueError as e:
        raise CheckpointError(path, f"bad vocab {meta.vocab!r}: {e}") from None


def shape_of(path: Path, meta: CheckpointMeta, vocab: Vocab, limits: Limits) -> LanguageModel:
    """The model the config describes, on the meta device: shapes without memory and without
    initialisation, so a hostile config asking for a 10^12-unit layer costs nothing."""
    try:
        kind = KINDS[meta.model_type]
    except KeyError:
        raise CheckpointError(path, f"unknown model_type {meta.model_type!r}; known: "
                                    f"{', '.join(KINDS)}") from None
    try:
        config = kind.make_config(meta.config)
        with torch.device("meta"):
            shape = kind.build(vocab, config)
        n_params = sum(t.numel() for t in shape.state_dict().values())
    except Exception as e:  # noqa: BLE001 (TypeError, ValueError, a RuntimeError on overflow...)
        raise CheckpointError(path, f"bad config for {meta.model_type}: "
                                    f"{one_line(str(e))}") from None
    if n_params > limits.max_params:
        raise CheckpointError(path, f"its config needs {n_params:,} parameters; at most "
                                    f"{limits.max_params:,} are served "
                                    f"(NAMELAB_MAX_MODEL_PARAMS)")
    return shape


def check_layout(path: Path, meta: CheckpointMeta, model: LanguageModel, header: dict,
                  limits: Limits) -> None:
    """The header's tensors are exactly the model's (names and shapes) plus the training
    names: checked before a byte of tensor data is read."""
    for key in (NAMES_TENSOR, OTHER_NAMES_TENSOR):
        names = header.get(key)
        if names is None and key == OTHER_NAMES_TENSOR:
            continue  # optional
        if (names is None or names["dtype"] != "U8" or len(names["shape"]) != 1):
            raise CheckpointError(path, f"missing or malformed tensor {key!r}")
        if names["shape"][0] > limits.max_names_bytes:
            raise CheckpointError(path, f"{key!r} has {names['shape'][0]:,} bytes; at "
                                        f"most {limits.max_names_bytes:,} "
                                        f"(NAMELAB_MAX_TRAINING_NAMES)")
    tensors = {k: v for k, v in header.items()
               if k not in ("__metadata__", NAMES_TENSOR, OTHER_NAMES_TENSOR)}
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing or extra:
        raise CheckpointError(
            path, f"weights do not match a {model.kind} with this config/vocab: "
                  f"missing {missing or 'none'}, unexpected {extra or 'none'}")
    for key, want in expected.items():
        got = tensors[key]
        if tuple(got["shape"]) != tuple(want.shape):
            raise CheckpointError(
                path, f"tensor {key!r} has shape {tuple(got['shape'])} but the config and "
                      f"vocab ({len(model.vocab)} symbols) need {tuple(want.shape)}")
        if got["dtype"] not in FLOAT_DTYPES:
            raise CheckpointError(path, f"tensor {key!r} has dtype {got['dtype']}, "
                                        f"expected float")
    n_params = sum(t.numel() for t in expected.values())
    if meta.n_params != n_params:  # printed on the model card
        raise CheckpointError(path, f"n_params says {meta.n_params:,} but its weights hold "
                                    f"{n_params:,} numbers")


def count_names(path: Path, f: BinaryIO, header: dict, limits: Limits) -> int:
    """The number of training names, from their bytes alone (a read bounded by
    Limits.max_names_bytes), before any tensor is read or any name becomes a str."""
    info = header[NAMES_TENSOR]
    n_header = int.from_bytes(_peek(f, 0, 8), "little")
    start, stop = info["data_offsets"]
    raw = _peek(f, 8 + n_header + start, stop - start)
    count = raw.count(b"\n") + 1 if raw else 0
    if count > limits.max_training_names:
        raise CheckpointError(path, f"it has {count:,} training names; at most "
                                    f"{limits.max_training_names:,} are served "
                                    f"(NAMELAB_MAX_TRAINING_NAMES)")
    return count


def _peek(f: BinaryIO, offset: int, n: int) -> bytes:
    f.seek(offset)
    return f.read(n)


def load_bytes(file_bytes: int, n_params: int, weight_bytes: int, names_bytes: int,
               n_names: int) -> int:
    """The memory loading a checkpoint needs at most, estimated from its header: the file read
    whole and its tensors (twice the file), the model's own weights and their fast form
    (WEIGHT_COPIES), the work of building and checking it (COMPUTE_BYTES_PER_PARAM), the
    names' text and their strs (NAME_OBJECT_BYTES each)."""
    return (2 * file_bytes + WEIGHT_COPIES * weight_bytes + COMPUTE_BYTES_PER_PARAM * n_params
            + 2 * names_bytes + NAME_OBJECT_BYTES * n_names)


def check_load_bytes(path: Path, shape: LanguageModel, header: dict, size: int, n_names: int,
                      limits: Limits) -> None:
    tensors = shape.state_dict().values()
    n_params = sum(t.numel() for t in tensors)
    weights = sum(t.numel() * t.element_size() for t in tensors)
    need = load_bytes(size, n_params, weights, header[NAMES_TENSOR]["shape"][0], n_names)
    if need > limits.max_load_bytes:
        raise CheckpointError(path, f"loading it needs about {need / 2**20:,.0f} MiB; at most "
                                    f"{limits.max_load_bytes / 2**20:,.0f} MiB are allowed "
                                    f"(NAMELAB_MAX_LOAD_BYTES)")


def check_weights(path: Path, shape: LanguageModel, tensors: dict[str, torch.Tensor]) -> None:
    """Values: finite, weights at most MAX_WEIGHT in size, a kind's pair counts (if it has
    them: Kind.has_counts) in [0, MAX_COUNT]."""
    counts_key = _counts_key(shape)
    for key, got in tensors.items():
        if not torch.isfinite(got).all():
            raise CheckpointError(path, f"tensor {key!r} has NaN or infinite values")
        if key == counts_key:
            continue
        if got.numel() and got.abs().max().item() > MAX_WEIGHT:
            raise CheckpointError(path, f"tensor {key!r} has weights larger than {MAX_WEIGHT:g}")
    counts = tensors.get(counts_key) if counts_key is not None else None
    if counts is not None and (counts < 0).any():
        raise CheckpointError(path, f"tensor {counts_key!r} has negative counts")
    if counts is not None and counts.numel() and counts.max().item() > MAX_COUNT:
        raise CheckpointError(path, f"tensor {counts_key!r} has counts over {MAX_COUNT:g}")


def _counts_key(shape: LanguageModel) -> str | None:
    """The name of the tensor holding a counting kind's pair counts, or None: counts are not
    weights, so they have their own bounds."""
    if not KINDS[shape.kind].has_counts:
        return None
    counts = shape.bigram_counts()
    return next(k for k, b in shape.named_buffers() if b is counts)


@torch.no_grad()
def check_log_probs(path: Path, model: LanguageModel) -> None:
    """Every next-letter distribution is a distribution: no NaN, and no zero probability
    (log-prob -inf) unless the model can give one (a bigram without smoothing). Every context
    of a small model, a seeded sample of a larger one's."""
    V, B = len(model.vocab), model.block_size
    n = max(PROBE_LETTERS // B, 64)
    if V**B <= n:
        probe = (torch.arange(V**B)[:, None] // V ** torch.arange(B - 1, -1, -1)) % V
    else:
        gen = torch.Generator().manual_seed(0)
        probe = torch.randint(0, V, (n, B), generator=gen)
        probe[0] = 0  # the start of every name
    logp = torch.log_softmax(model(probe)[0].double(), dim=1)
    if torch.isnan(logp).any() or (logp == math.inf).any():
        raise CheckpointError(path, "its next-letter probabilities are not numbers (NaN): "
                                    "the weights or counts are too large or too small")
    if not model.may_give_zero() and not torch.isfinite(logp).all():
        raise CheckpointError(path, "it gives some letters probability 0 (log-prob -inf) "
                                    "after smoothing: the counts or smoothing are too large")


def training_names(path: Path, names_bytes: torch.Tensor, vocab: Vocab,
                    meta: CheckpointMeta, key: str = NAMES_TENSOR) -> list[str]:
    try:
        text = names_bytes.numpy().tobytes().decode()
    except UnicodeDecodeError:
        raise CheckpointError(path, f"{key!r} is not UTF-8 text") from None
    training_names = text.split("\n") if text else []
    # Every name non-empty, of the vocab's letters, and as normalize_name leaves it. Checked on
    # the whole text at once (a name at a time took 70 ms a model at start-up); a name at a time
    # only when that fails, to say which, or when the letters alone cannot tell (a vocab whose
    # letters normalize_name would change).
    plain = all(ch.isascii() and ch.isalnum() and ch == ch.lower() for ch in vocab.chars)
    if (plain and "" not in training_names
            and set(text) <= set(vocab.chars) | {"\n"}):
        return training_names
    bad = [n for n in training_names if not n
           or normalize_name(n) != n or any(ch not in vocab.chars for ch in n)]
    if bad:
        what = "training names" if key == NAMES_TENSOR else f"names of {key!r}"
        raise CheckpointError(
            path, f"{len(bad)} {what} do not fit the vocab {meta.vocab!r}, e.g. {bad[0]!r}")
    return training_names


def parse_meta(path: Path, header: dict) -> CheckpointMeta:
    raw = (header.get("__metadata__") or {}).get(META_KEY)
    if raw is None:
        raise CheckpointError(path, f"no Namelab metadata ({META_KEY!r}) in the header")
    try:
        meta = json.loads(raw, parse_constant=_not_finite, parse_float=_finite_float)
    except _NotFinite as e:
        raise CheckpointError(path, f"Namelab metadata has {e}: not a finite number") from None
    except ValueError:
        raise CheckpointError(path, "Namelab metadata is not valid JSON") from None
    except RecursionError:
        raise CheckpointError(path, "Namelab metadata is nested too deeply") from None
    if not isinstance(meta, dict):
        raise CheckpointError(path, "Namelab metadata must be a JSON object")
    _check_values(path, meta)
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            path, f"unknown format_version {one_line(repr(version), 40)}; this Namelab reads "
                  f"{FORMAT_VERSION}")
    try:
        parsed = CheckpointMeta.model_validate(meta)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors()[:5]
        )
        raise CheckpointError(path, f"bad metadata: {problems}") from None
    except RecursionError:
        raise CheckpointError(path, "Namelab metadata is nested too deeply") from None
    _check_losses(path, parsed)
    return parsed


def _check_values(path: Path, meta: dict) -> None:
    """Every number of the metadata at most MAX_NUMBER in size (finite: _finite_float), every
    string and key printable: whatever field it is in, a page may print or plot it."""
    stack: list[object] = [meta]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, str):
            if not value.isprintable():
                bad = next(ch for ch in value if not ch.isprintable())
                raise CheckpointError(path, f"Namelab metadata has a string with the control "
                                            f"character {ascii(bad)}: {one_line(ascii(value), 60)}")
        elif isinstance(value, int | float) and not isinstance(value, bool):
            if abs(value) > MAX_NUMBER:
                raise CheckpointError(path, f"Namelab metadata has the number "
                                            f"{one_line(repr(value), 40)}: at most "
                                            f"{MAX_NUMBER:g} in size")


def _check_losses(path: Path, meta: CheckpointMeta) -> None:
    """The loss history and the metrics, which the model card plots and prints: as many points
    of each curve as steps, at most MAX_HISTORY, at increasing steps, losses in [0, MAX_LOSS]."""
    h = meta.history
    if not len(h.step) == len(h.train) == len(h.val):
        raise CheckpointError(path, f"the loss history has {len(h.step)} steps, {len(h.train)} "
                                    f"training and {len(h.val)} validation losses: one each")
    if len(h.step) > MAX_HISTORY:
        raise CheckpointError(path, f"the loss history has {len(h.step):,} points; at most "
                                    f"{MAX_HISTORY:,}")
    if any(s < 0 for s in h.step) or any(b <= a for a, b in zip(h.step, h.step[1:],
                                                                   strict=False)):
        raise CheckpointError(path, "the loss history's steps must be increasing and >= 0")
    m = meta.metrics
    losses = [("history.train", v) for v in h.train] + [("history.val", v) for v in h.val] + [
        (f"metrics.{k}", v) for k, v in (("train_nll", m.train_nll), ("val_nll", m.val_nll),
                                        ("test_nll", m.test_nll))]
    for where, v in losses:
        if v is not None and not 0 <= v <= MAX_LOSS:
            raise CheckpointError(path, f"{where} has the loss {v:g}: a loss (NLL per "
                                        f"character) is in [0, {MAX_LOSS:g}]")


class _NotFinite(ValueError):
    pass


def _not_finite(text: str):
    """NaN and +-Infinity (Python's json accepts them) would poison metrics and smoothing."""
    raise _NotFinite(text)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999
        raise _NotFinite(text)
    return value
