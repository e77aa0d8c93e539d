"""Sampling names: POST with a JSON body, or GET with the same fields as query parameters."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query
from fastapi.responses import Response

from app import batching
from app.api.deps import ModelDep
from app.api.errors import check_sample
from app.api.render import json_response, sample_payload
from app.api.schemas import NOT_FOUND, SampleParams, SampleQuery, SampleRequest, SampleResponse
from app.registry import LoadedModel

router = APIRouter(prefix="/api/models/{model}", tags=["sampling"], responses=NOT_FOUND)

EXAMPLES = {
    "seeded": {"summary": "5 names, reproducible", "value": {"n": 5, "seed": 42}},
    "new names": {"summary": "new names starting with 'an'",
                  "value": {"n": 10, "prefix": "an", "unique": True, "exclude_training": True}},
    "safer": {"summary": "cooler temperature, top-5",
              "value": {"n": 10, "temperature": 0.7, "top_k": 5}},
}


# Async: the fields are checked here, the sampling is batched on the model thread
# (app/batching.py).
@router.post("/sample", summary="Sample names", response_model=SampleResponse)
async def sample_names(
    m: ModelDep,
    req: Annotated[SampleRequest | None, Body(openapi_examples=EXAMPLES)] = None,
) -> Response:
    """Draw `n` names. Same seed and fields, same names. With `unique`/`exclude_training`,
    fewer names may come back (`exhausted: true`) when more are too hard to find."""
    return await run_sample(m, req or SampleRequest(), "body")


@router.get("/sample", summary="Sample names (query parameters)", response_model=SampleResponse)
async def sample_names_get(m: ModelDep, q: Annotated[SampleQuery, Query()]) -> Response:
    """The same as the POST, e.g. `?n=5&seed=42&prefix=an`."""
    return await run_sample(m, q, "query")


async def run_sample(m: LoadedModel, p: SampleParams, where: str) -> Response:
    check_sample(m, p, where)
    result = await batching.sample(
        m, n=p.n, seed=p.seed, temperature=p.temperature, top_k=p.top_k, prefix=p.prefix,
        max_len=p.max_len, unique=p.unique, exclude_training=p.exclude_training)
    return json_response(sample_payload(m.name, result))
