"""Scoring names: the log-likelihood, per-letter breakdown and plausibility of given names."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import Response

from app.api.render import json_response, score_payload
from app.api.schemas import NOT_FOUND, ScoreRequest, ScoreResponse
from app.domain.params import NameParam
from app.serving import batching
from app.serving.pagecache import cacheable
from app.store.registry import LoadedModel
from app.web.deps import ModelDep
from app.web.errors import SafeJSONResponse, invalid_param_error

router = APIRouter(prefix="/api/models/{model}", tags=["scoring"], responses=NOT_FOUND)

EXAMPLES = {
    "three names": {"summary": "a real name, an accented one, a made-up one",
                    "value": {"names": ["emma", "José", "xqzvk"]}},
}


# Async: the names are checked here, the scoring is batched on the model thread
# (app/serving/batching.py).
@router.post("/score", summary="Score names", response_model=ScoreResponse,
             responses={422: {"description": "The body is malformed, or no name can be "
                                             "scored (each one's problem named)"}})
async def score_names(
    request: Request, m: ModelDep, req: Annotated[ScoreRequest, Body(openapi_examples=EXAMPLES)]
) -> Response:
    """log P(name), NLL per character, perplexity, plausibility (the percentile among names
    of the same length the model never trained on: 50 = a typical real name) and every step
    (context, probability, rank), for each name that can be scored, in the order given; each
    name that cannot (letters outside the model's alphabet) is in `errors` instead."""
    return await answer(request, m, req)


async def answer(request: Request, m: LoadedModel, req: ScoreRequest) -> Response:
    """The POST's answer to a valid request (app/api/fastlane.py calls it too)."""
    scored, errors = await batching.score_valid(m, req.names)
    if not scored:
        return SafeJSONResponse(status_code=422, content={
            "detail": [invalid_param_error(request, e) for e in errors]})
    return json_response(score_payload(m.name, scored, errors))


@router.get("/score", summary="Score one name", response_model=ScoreResponse)
@cacheable
async def score_name(m: ModelDep, q: Annotated[NameParam, Query()]) -> Response:
    """The same as the POST for one name: `?name=emma`."""
    results = await batching.score(m, [q.name], "name", indexed=False)
    return json_response(score_payload(m.name, results))
