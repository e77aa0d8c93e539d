"""Sampling names: POST with a JSON body, or GET with the same fields as query parameters."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import Response

from app.api.render import json_response, sample_payload
from app.api.schemas import NOT_FOUND, SampleRequest, SampleResponse
from app.domain.params import SampleParams
from app.serving import batching
from app.store.registry import LoadedModel
from app.web.deps import ModelDep

router = APIRouter(prefix="/api/models/{model}", tags=["sampling"], responses=NOT_FOUND)

EXAMPLES = {
    "seeded": {"summary": "5 names, reproducible", "value": {"n": 5, "seed": 42}},
    "new names": {"summary": "new names starting with 'an'",
                  "value": {"n": 10, "prefix": "an", "unique": True, "exclude_training": True}},
    "safer": {"summary": "cooler temperature, top-5",
              "value": {"n": 10, "temperature": 0.7, "top_k": 5}},
}


# Async: the fields are checked here, the sampling is batched on the model thread
# (app/serving/batching.py).
@router.post("/sample", summary="Sample names", response_model=SampleResponse)
async def sample_names(
    request: Request,
    m: ModelDep,
    req: Annotated[SampleRequest | None, Body(openapi_examples=EXAMPLES)] = None,
) -> Response:
    """Draw `n` names. Same seed and fields, same names. With `unique`/`exclude_training`,
    fewer names may come back (`exhausted: true`) when more are too hard to find within the
    bounded effort (a count of names drawn: the same on every machine). A request gets at most
    10 s of model time, a safety net: sampling stops then, with the names of its whole rounds
    of draws (`timed_out: true`, `exhausted: true`). Concurrent requests for the
    same model are sampled together on the model thread (app/serving/batching.py), each as alone."""
    return await answer(request, m, req or SampleRequest())


async def answer(request: Request, m: LoadedModel, req: SampleRequest) -> Response:
    """The POST's answer to a valid request (app/api/fastlane.py calls it too)."""
    return json_response(sample_payload(m.name, await batching.sample(m, req)))


@router.get("/sample", summary="Sample names (query parameters)", response_model=SampleResponse)
async def sample_names_get(m: ModelDep, q: Annotated[SampleParams, Query()]) -> Response:
    """The same as the POST, e.g. `?n=5&seed=42&prefix=an`."""
    return json_response(sample_payload(m.name, await batching.sample(m, q)))
