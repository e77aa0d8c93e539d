"""Configuration fields declared once: their default, help text and bounds side by side.

A kind's config (app/lm/<kind>.py) and the shared trainer's `OptimConfig` are dataclasses whose
fields are declared with `param(default, help, ge=..., le=...)`; `check_fields` (each config's
`__post_init__`) checks them, and `help_of` gives the CLI's `--help` text. This module imports
nothing of Namelab's, so the kinds, the registry (kind.py) and the trainer (train.py) can all
import it without importing each other.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import MISSING, Field, dataclass, field, fields
from typing import Any

BOUNDS = {"ge": (">=", lambda v, b: v >= b), "gt": (">", lambda v, b: v > b),
          "le": ("<=", lambda v, b: v <= b), "lt": ("<", lambda v, b: v < b)}


def param(default: Any, help: str, **bounds: float) -> Any:
    """A config field: its default, its help text and its bounds (ge, gt, le, lt)."""
    unknown = set(bounds) - set(BOUNDS)
    if unknown:
        raise TypeError(f"unknown bounds {sorted(unknown)}; use {sorted(BOUNDS)}")
    return field(default=default, metadata={"help": help, **bounds})


def check_fields(cfg: Any) -> None:
    """Type and bounds of every field of a config dataclass (TypeError / ValueError naming it).

    An int is accepted where a float is expected (and stored as a float); a bool never counts
    as a number; floats must be finite.
    """
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        want = type(f.default) if f.default is not MISSING else None
        if want is float and type(value) is int:
            value = float(value)
            object.__setattr__(cfg, f.name, value)
        if want is not None and type(value) is not want:
            raise TypeError(f"{f.name} must be {want.__name__}, got {value!r}")
        if want is float and not math.isfinite(value):
            raise ValueError(f"{f.name} must be finite, got {value}")
        for key, (symbol, ok) in BOUNDS.items():
            bound = f.metadata.get(key)
            if bound is not None and not ok(value, bound):
                raise ValueError(f"{f.name} must be {symbol} {bound}, got {value}")


def help_of(f: Field) -> str:
    """A field's help text with its bounds, e.g. 'dropout after each layer (>= 0, < 1)'."""
    bounds = bounds_text(f.metadata)
    text = f.metadata.get("help", f.name)
    return f"{text} ({bounds})" if bounds else text


def bounds_text(bounds: Mapping[str, Any], max_length: int | None = None) -> str:
    """Bounds (ge, gt, le, lt) as text, '>= 0, < 1', for help texts and error messages alike
    (the request parameters' too, app/domain/params.py)."""
    words = [f"{symbol} {bounds[key]}" for key, (symbol, _) in BOUNDS.items()
             if bounds.get(key) is not None]
    if max_length is not None:
        words.append(f"at most {max_length} characters")
    return ", ".join(words)


@dataclass
class OptimConfig:
    """The shared gradient trainer's settings; each kind declares its own defaults (`Kind`)."""

    steps: int = param(9_000, "optimisation steps", ge=1)
    batch_size: int = param(1024, "examples per step; 0: every example at every step", ge=0)
    lr: float = param(5e-3, "peak learning rate (AdamW)", gt=0)
    lr_min: float = param(3e-5, "learning rate at the end of the cosine decay", ge=0)
    warmup: int = param(500, "linear warm-up steps", ge=0)
    weight_decay: float = param(0.05, "AdamW weight decay, on linear layers' weights only",
                                ge=0)
    beta2: float = param(0.99, "AdamW's second-moment decay (beta1 is 0.9)", gt=0, lt=1)
    ema: float = param(0.0, "decay of an exponential moving average of the weights, which is "
                       "what is validated and kept (0: off; 0.999 averages ~1,000 steps)",
                       ge=0, lt=1)
    eval_interval: int = param(1000, "steps between validation passes (history points)", ge=1)
    seed: int = param(1337, "seed of the initial weights, the minibatches and dropout", ge=0)
    device: str = param("cpu", "torch device")

    def __post_init__(self) -> None:
        check_fields(self)
        if self.lr_min > self.lr:
            raise ValueError(f"need lr_min <= lr, got lr={self.lr}, lr_min={self.lr_min}")

    def lr_at(self, step: int) -> float:
        """Linear warm-up, then cosine decay from lr to lr_min."""
        if step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        t = (step - self.warmup) / max(1, self.steps - self.warmup)
        return self.lr_min + 0.5 * (self.lr - self.lr_min) * (1 + math.cos(math.pi * t))
