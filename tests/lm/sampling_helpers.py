"""The product's sampler run once, as app/services.py runs it: `drive` of one `sampler`."""

from __future__ import annotations

from typing import Any

import torch

from app.lm.base import LanguageModel
from app.lm.sampling import Drawn, drive, sampler


def draw(model: LanguageModel, n: int, generator: torch.Generator, **options: Any) -> Drawn:
    """n draws (`options`: `sampler`'s); the run's error raised."""
    (result,) = drive(model, [sampler(model, n, generator, **options)])
    if isinstance(result, Exception):
        raise result
    return result


def draw_names(model: LanguageModel, n: int, generator: torch.Generator,
               **options: Any) -> list[str]:
    """The names of `draw` that fit, in draw order."""
    return draw(model, n, generator, **options).names


def draw_scored(model: LanguageModel, n: int, generator: torch.Generator,
                **options: Any) -> tuple[list[str], list[float]]:
    """`draw_names` and each name's log-probability at temperature 1."""
    d = draw(model, n, generator, **options)
    return d.names, d.log_probs
