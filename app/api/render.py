"""Big responses straight from the domain dataclasses to JSON bytes.

Scoring 1000 names returns ~7000 steps; building and then re-validating pydantic models for
them costs more than the model's forward pass. orjson serialises the dataclasses of
`app.domain.services` directly (in Rust, ~5x faster than pydantic-core for these) instead. The
routes still declare their pydantic response models, so /docs describes these responses exactly, and
the tests check every response against that description (tests/api/test_fuzz.py,
test_score.py, test_sample.py).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import orjson
from fastapi.responses import Response

from app.domain.params import InvalidParam
from app.domain.services import NameScore, SampleResult


def json_response(payload: Any) -> Response:
    """Dataclasses, dicts, lists and numbers as JSON; inf and nan as null (orjson's way)."""
    return Response(orjson.dumps(payload), media_type="application/json")


def score_json(s: NameScore) -> NameScore:
    """A score as JSON writes it (`NameScoreOut`'s shape): inf and nan become null, and the
    perplexity is null with log_prob (a 0-probability name)."""
    return s if math.isfinite(s.log_prob) else dataclasses.replace(s, perplexity=math.nan)


def score_payload(model: str, results: list[NameScore],
                  errors: list[InvalidParam] = ()) -> dict[str, Any]:
    """`ScoreResponse`'s shape."""
    return {"model": model, "results": [score_json(s) for s in results],
            "errors": [{"index": e.index, "name": e.value, "type": e.type, "msg": str(e)}
                       for e in errors]}


def sample_payload(model: str, r: SampleResult) -> dict[str, Any]:
    """`SampleResponse`'s shape."""
    return {"model": model, "seed": r.seed, "exhausted": r.exhausted, "timed_out": r.timed_out,
            "drawn": r.drawn, "fits": r.fits, "constraint_mass": r.constraint_mass,
            "mass_exact": r.mass_exact,
            "names": r.names}
