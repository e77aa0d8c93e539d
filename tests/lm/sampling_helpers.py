"""The product's sampler run once, as app/domain/services.py runs it: `drive` of one `sampler`."""

from __future__ import annotations

from typing import Any

import torch

from app.lm.base import LanguageModel
from app.lm.constraints import Constraint
from app.lm.sampling import Drawn, SamplingOptions, drive, plain, sampler


def options(model: LanguageModel, prefix: str = "", max_len: int = 32,
            constraint: Constraint | None = None, **knobs: Any) -> SamplingOptions:
    """SamplingOptions from keywords: the knobs, and `constraint` (by default the `plain` one
    of prefix and max_len)."""
    return SamplingOptions(**knobs, constraint=constraint or plain(model.vocab, prefix, max_len))


def draw(model: LanguageModel, n: int, generator: torch.Generator, deadline=None,
         **kw: Any) -> Drawn:
    """n draws (`kw`: `options`'); the run's error raised."""
    (result,) = drive(model, [sampler(model, n, generator, options(model, **kw), deadline)])
    if isinstance(result, Exception):
        raise result
    return result


def draw_names(model: LanguageModel, n: int, generator: torch.Generator,
               **kw: Any) -> list[str]:
    """The names of `draw` that fit, in draw order."""
    return draw(model, n, generator, **kw).names


def draw_scored(model: LanguageModel, n: int, generator: torch.Generator,
                **kw: Any) -> tuple[list[str], list[float]]:
    """`draw_names` and each name's log-probability at temperature 1."""
    d = draw(model, n, generator, **kw)
    return d.names, d.log_probs
