"""Scoring names: the log-likelihood, per-letter breakdown and plausibility of given names."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query
from fastapi.responses import Response

from app import batching
from app.api.render import json_response, score_payload
from app.api.schemas import NOT_FOUND, ScoreRequest, ScoreResponse
from app.params import NameParam
from app.web import ModelDep

router = APIRouter(prefix="/api/models/{model}", tags=["scoring"], responses=NOT_FOUND)

EXAMPLES = {
    "three names": {"summary": "a real name, an accented one, a made-up one",
                    "value": {"names": ["emma", "José", "xqzvk"]}},
}


# Async: the names are checked here, the scoring is batched on the model thread (app/batching.py).
@router.post("/score", summary="Score names", response_model=ScoreResponse)
async def score_names(
    m: ModelDep, req: Annotated[ScoreRequest, Body(openapi_examples=EXAMPLES)]
) -> Response:
    """log P(name), NLL per character, perplexity, plausibility (the percentile among names
    the model never trained on: 37 = a better NLL per character than 37% of its held-out
    validation names, as emma under a bigram of 2017) and every step (context, probability,
    rank), for each name in the order given."""
    return json_response(score_payload(m.name, await batching.score(m, req.names)))


@router.get("/score", summary="Score one name", response_model=ScoreResponse)
async def score_name(m: ModelDep, q: Annotated[NameParam, Query()]) -> Response:
    """The same as the POST for one name: `?name=emma`."""
    results = await batching.score(m, [q.name], "name", indexed=False)
    return json_response(score_payload(m.name, results))
