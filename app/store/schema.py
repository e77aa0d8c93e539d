"""What a checkpoint says about itself: the metadata's schema (pydantic, stored as JSON in the
safetensors header), the names of the format and its tensors, and the loaded Checkpoint."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from app.lm import LanguageModel
from app.lm.scoring import QUANTILES
from app.lm.train import History
from app.lm.vocab import MAX_NAME_LEN

FORMAT = "namelab-checkpoint"


FORMAT_VERSION = 1


SUFFIX = ".safetensors"


META_KEY = "namelab"


NAMES_TENSOR = "training_names"  # UTF-8 bytes of the sorted training names, newline-separated


# Optional, the same way: the other names of the model's data (its validation and test splits,
# less the training names), so that "in the data" can be told apart from "in the training split"
OTHER_NAMES_TENSOR = "other_names"


class CheckpointError(ValueError):
    """A checkpoint that cannot be written or loaded: `str()` is "<path>: <reason>"; `reason`
    alone is one short line without the path (what a server shows)."""

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path, self.reason = Path(path), one_line(reason)
        super().__init__(f"{path}: {self.reason}")


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


def _finite(q: list[float]) -> list[float]:
    if not all(math.isfinite(x) for x in q):
        raise ValueError("must be finite")
    return q


class HeldOut(BaseModel):
    """The reference of plausibility: NLL per character of the held-out names at 0..100%, and
    (checkpoints calibrated since issue 21) the same by length: app.lm.scoring.length_quantiles.
    """

    model_config = ConfigDict(extra="forbid")
    # the distinct names of these parts of the split that are not training names: "val" in
    # checkpoints calibrated before issue 21's second round, "val+test" since
    split: Literal["val", "val+test"] = "val"
    n_names: int = Field(ge=1)
    quantiles: list[float] = Field(min_length=QUANTILES, max_length=QUANTILES)
    # per length 1..MAX_NAME_LEN: the median and spread of held-out NLL per character; and the
    # quantiles of every held-out name's NLL standardised by its length's
    length_centre: list[float] | None = Field(None, min_length=MAX_NAME_LEN,
                                              max_length=MAX_NAME_LEN)
    length_scale: list[float] | None = Field(None, min_length=MAX_NAME_LEN,
                                             max_length=MAX_NAME_LEN)
    length_quantiles: list[float] | None = Field(None, min_length=QUANTILES,
                                                 max_length=QUANTILES)

    @field_validator("quantiles", "length_quantiles")
    @classmethod
    def _non_decreasing(cls, q: list[float] | None) -> list[float] | None:
        if q is None:
            return q
        if not all(math.isfinite(x) for x in q):
            raise ValueError("quantiles must be finite")
        if any(b < a for a, b in zip(q, q[1:], strict=False)):
            raise ValueError("quantiles must be non-decreasing")
        return q

    @field_validator("length_centre", "length_scale")
    @classmethod
    def _finite_lengths(cls, v: list[float] | None) -> list[float] | None:
        return None if v is None else _finite(v)

    @model_validator(mode="after")
    def _all_or_none(self) -> HeldOut:
        parts = (self.length_centre, self.length_scale, self.length_quantiles)
        if any(p is None for p in parts) and any(p is not None for p in parts):
            raise ValueError("length_centre, length_scale and length_quantiles go together")
        if self.length_scale is not None and min(self.length_scale) <= 0:
            raise ValueError("length_scale must be positive")
        return self

    @property
    def by_length(self) -> bool:
        return self.length_quantiles is not None


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
    history: History = Field(default_factory=History)
    # Optional (absent in checkpoints made before it existed; they still load, and their
    # plausibility is unavailable with the reason shown).
    held_out: HeldOut | None = None


@dataclass
class Checkpoint:
    path: Path
    model: LanguageModel
    meta: CheckpointMeta
    training_names: list[str]  # sorted, distinct
    # the rest of the model's data (val and test, less the training names), sorted, distinct;
    # None for a checkpoint that does not carry them (`namelab calibrate` adds them)
    other_names: list[str] | None = None

    @property
    def name(self) -> str:
        return self.path.name.removesuffix(SUFFIX)


def one_line(text: str, limit: int = 300) -> str:
    """A message made fit for a log line or a JSON field: the first line, control characters
    escaped, at most `limit` characters (a C++ error from torch comes with its stack trace)."""
    first = text.strip().split("\n", 1)[0]
    safe = "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in first)
    return safe if len(safe) <= limit else safe[: limit - 3] + "..."
