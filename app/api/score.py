"""Scoring names: the log-likelihood, per-letter breakdown and plausibility of given names."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query
from fastapi.responses import Response

from app import services
from app.api.render import json_response, score_payload
from app.api.schemas import NOT_FOUND, ScoreRequest, ScoreResponse
from app.params import NameParam
from app.web import ModelDep
from app.worker import model_thread

router = APIRouter(prefix="/api/models/{model}", tags=["scoring"], responses=NOT_FOUND)

EXAMPLES = {
    "three names": {"summary": "a real name, an accented one, a made-up one",
                    "value": {"names": ["emma", "José", "xqzvk"]}},
}


@router.post("/score", summary="Score names", response_model=ScoreResponse)
@model_thread
def score_names(
    m: ModelDep, req: Annotated[ScoreRequest, Body(openapi_examples=EXAMPLES)]
) -> Response:
    """log P(name), NLL per character, perplexity, plausibility among the training names and
    every step (context, probability, rank), for each name in the order given."""
    return json_response(score_payload(m.name, services.score(m, req.names)))


@router.get("/score", summary="Score one name", response_model=ScoreResponse)
@model_thread
def score_name(m: ModelDep, q: Annotated[NameParam, Query()]) -> Response:
    """The same as the POST for one name: `?name=emma`."""
    results = services.score(m, [q.name], "name", indexed=False)
    return json_response(score_payload(m.name, results))
