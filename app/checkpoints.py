"""Self-describing checkpoints: safetensors weights + JSON metadata in the safetensors header.

No pickle anywhere: a checkpoint is tensors and a JSON string, so loading one never runs code.
Writes are atomic (temporary file in the same folder, fsync, rename), so an interrupted run never
leaves a half-written file in place of a good one. Loading validates everything and every
failure is a CheckpointError naming the file and the problem.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from app.lm import MODEL_TYPES, LanguageModel, Vocab
from app.lm.scoring import QUANTILES
from app.lm.vocab import normalize_name

FORMAT = "namelab-checkpoint"
FORMAT_VERSION = 1
SUFFIX = ".safetensors"
META_KEY = "namelab"
NAMES_TENSOR = "training_names"  # UTF-8 bytes of the sorted training names, newline-separated
PICKLE_SUFFIXES = {".pt", ".pth", ".pkl", ".pickle", ".bin", ".ckpt"}
FLOAT_DTYPES = {torch.float16, torch.bfloat16, torch.float32, torch.float64}


class CheckpointError(ValueError):
    """A checkpoint that cannot be written or loaded; the message names the file."""


class Metrics(BaseModel):
    model_config = ConfigDict(extra="forbid")
    train_nll: float | None
    val_nll: float | None
    test_nll: float | None


class DatasetInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")
    spec: str
    n_words: int = Field(ge=1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class SplitInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seed: int | None  # None: no split, every word trained on
    n_train: int = Field(ge=1)
    n_val: int = Field(ge=0)
    n_test: int = Field(ge=0)


class History(BaseModel):
    model_config = ConfigDict(extra="forbid")
    step: list[int] = []
    train: list[float] = []
    val: list[float | None] = []


class HeldOut(BaseModel):
    """The reference of plausibility: NLL per character of the held-out names at 0..100%."""

    model_config = ConfigDict(extra="forbid")
    split: Literal["val"] = "val"  # distinct validation names that are not training names
    n_names: int = Field(ge=1)
    quantiles: list[float] = Field(min_length=QUANTILES, max_length=QUANTILES)

    @field_validator("quantiles")
    @classmethod
    def _non_decreasing(cls, q: list[float]) -> list[float]:
        if any(b < a for a, b in zip(q, q[1:], strict=False)):
            raise ValueError("quantiles must be non-decreasing")
        return q


class CheckpointMeta(BaseModel):
    """Everything a checkpoint says about itself (stored as JSON in the safetensors header)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())
    format: Literal["namelab-checkpoint"] = FORMAT
    format_version: int
    model_type: str
    config: dict[str, Any]  # rebuilds the model's shape (MLPConfig fields, bigram smoothing...)
    training: dict[str, Any]  # how it was trained (optimiser settings, steps, seed...)
    vocab: str  # '.abc...z': id -> character
    dataset: DatasetInfo
    split: SplitInfo
    metrics: Metrics
    n_params: int = Field(ge=0)
    training_seconds: float = Field(ge=0)
    created: str  # ISO 8601, UTC
    torch_version: str
    namelab_version: str
    history: History = History()
    # Optional (absent in checkpoints made before it existed; they still load, and their
    # plausibility is unavailable with the reason shown).
    held_out: HeldOut | None = None


@dataclass
class Checkpoint:
    path: Path
    model: LanguageModel
    meta: CheckpointMeta
    training_names: list[str]  # sorted, distinct

    @property
    def name(self) -> str:
        return self.path.name.removesuffix(SUFFIX)


def checkpoint_path(out_dir: Path | str, name: str) -> Path:
    return Path(out_dir) / f"{name}{SUFFIX}"


def save_checkpoint(
    path: Path, model: LanguageModel, meta: CheckpointMeta, training_names: list[str]
) -> Path:
    """Write atomically; returns the final path (always ending in .safetensors)."""
    path = Path(path)
    if path.suffix != SUFFIX:
        path = path.with_name(path.name + SUFFIX)
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    names = "\n".join(sorted(set(training_names))).encode()
    tensors[NAMES_TENSOR] = torch.frombuffer(bytearray(names), dtype=torch.uint8).clone()
    blob = st_save(tensors, metadata={META_KEY: meta.model_dump_json()})
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600; a server running as another user must read it
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_meta(path: Path) -> CheckpointMeta:
    """Only the metadata (cheap: reads the header)."""
    return _parse_meta(path, _read_header(path))


def load_checkpoint(path: Path | str) -> Checkpoint:
    path = Path(path)
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise CheckpointError(
            f"{path}: refusing a {path.suffix} file: pickle checkpoints can run code and are "
            f"never loaded; Namelab reads only {SUFFIX} files"
        )
    if path.suffix != SUFFIX:
        raise CheckpointError(f"{path}: not a checkpoint: expected a {SUFFIX} file")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint file") from None
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read: {e.strerror}") from None
    try:
        tensors = st_load(data)
    except (SafetensorError, ValueError, RuntimeError) as e:
        raise CheckpointError(
            f"{path}: not a valid safetensors file (truncated or corrupted?): {e}"
        ) from None
    meta = _parse_meta(path, _header_of(path, data))

    try:
        vocab = Vocab.from_string(meta.vocab)
    except ValueError as e:
        raise CheckpointError(f"{path}: bad vocab {meta.vocab!r}: {e}") from None
    try:
        cls = MODEL_TYPES[meta.model_type]
    except KeyError:
        raise CheckpointError(
            f"{path}: unknown model_type {meta.model_type!r}; known: {', '.join(MODEL_TYPES)}"
        ) from None
    try:
        # On the meta device first: shapes without memory, so a hostile config asking for a
        # 10^9-unit layer is refused by the shape check instead of allocating it.
        with torch.device("meta"):
            shape = cls.from_config(vocab, meta.config)
    except (TypeError, ValueError, KeyError) as e:
        raise CheckpointError(f"{path}: bad config for {meta.model_type}: {e}") from None

    names_bytes = tensors.pop(NAMES_TENSOR, None)
    if names_bytes is None or names_bytes.dtype != torch.uint8 or names_bytes.dim() != 1:
        raise CheckpointError(f"{path}: missing or malformed tensor {NAMES_TENSOR!r}")
    _check_weights(path, shape, tensors)
    model = cls.from_config(vocab, meta.config)  # the real one: as big as the file's tensors
    model.load_state_dict(tensors)
    model.freeze()  # served as loaded: eval mode, no gradients, the fast inference form

    try:
        text = bytes(names_bytes.tolist()).decode()
        training_names = text.split("\n") if text else []
    except UnicodeDecodeError:
        raise CheckpointError(f"{path}: {NAMES_TENSOR!r} is not UTF-8 text") from None
    bad = [n for n in training_names if not n or normalize_name(n) != n
           or any(ch not in vocab.chars for ch in n)]
    if bad:
        raise CheckpointError(
            f"{path}: {len(bad)} training names do not fit the vocab {meta.vocab!r}, "
            f"e.g. {bad[0]!r}"
        )
    return Checkpoint(path=path, model=model, meta=meta, training_names=training_names)


def _check_weights(path: Path, model: LanguageModel, tensors: dict[str, torch.Tensor]) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing or extra:
        raise CheckpointError(
            f"{path}: weights do not match a {model.kind} with this config/vocab: "
            f"missing {missing or 'none'}, unexpected {extra or 'none'}"
        )
    for key, want in expected.items():
        got = tensors[key]
        if tuple(got.shape) != tuple(want.shape):
            raise CheckpointError(
                f"{path}: tensor {key!r} has shape {tuple(got.shape)} but the config and vocab "
                f"({len(model.vocab)} symbols) need {tuple(want.shape)}"
            )
        if got.dtype not in FLOAT_DTYPES:
            raise CheckpointError(f"{path}: tensor {key!r} has dtype {got.dtype}, expected float")
        if not torch.isfinite(got).all():
            raise CheckpointError(f"{path}: tensor {key!r} has NaN or infinite values")
    if "counts" in expected and (tensors["counts"] < 0).any():
        raise CheckpointError(f"{path}: tensor 'counts' has negative counts")


def _read_header(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            n = int.from_bytes(head, "little") if len(head) == 8 else -1
            if not 0 < n <= 100_000_000:
                raise CheckpointError(f"{path}: not a valid safetensors file (bad header size)")
            raw = f.read(n)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint file") from None
    return _decode_header(path, raw, n)


def _header_of(path: Path, data: bytes) -> dict:
    n = int.from_bytes(data[:8], "little")
    return _decode_header(path, data[8 : 8 + n], n)


def _decode_header(path: Path, raw: bytes, n: int) -> dict:
    if len(raw) != n:
        raise CheckpointError(f"{path}: not a valid safetensors file (truncated header)")
    try:
        return json.loads(raw)
    except ValueError:
        raise CheckpointError(
            f"{path}: not a valid safetensors file (header is not JSON)"
        ) from None


def _parse_meta(path: Path, header: dict) -> CheckpointMeta:
    raw = (header.get("__metadata__") or {}).get(META_KEY)
    if raw is None:
        raise CheckpointError(f"{path}: no Namelab metadata ({META_KEY!r}) in the header")
    try:
        meta = json.loads(raw, parse_constant=_not_finite, parse_float=_finite_float)
    except _NotFinite as e:
        raise CheckpointError(f"{path}: Namelab metadata has {e}: not a finite number") from None
    except ValueError:
        raise CheckpointError(f"{path}: Namelab metadata is not valid JSON") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: Namelab metadata must be a JSON object")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: unknown format_version {version!r}; this Namelab reads {FORMAT_VERSION}"
        )
    try:
        return CheckpointMeta.model_validate(meta)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors()[:5]
        )
        raise CheckpointError(f"{path}: bad metadata: {problems}") from None


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
