"""One name under every loaded model, side by side."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from app.api.render import json_response, score_json
from app.api.schemas import CompareResponse
from app.domain.params import NameParam
from app.serving import batching
from app.serving.pagecache import cacheable
from app.web.deps import RegistryDep

router = APIRouter(prefix="/api", tags=["scoring"])


@router.get("/compare", summary="Score one name under every model",
            response_model=CompareResponse)
@cacheable
async def compare_name(registry: RegistryDep, q: Annotated[NameParam, Query()]) -> Response:
    """The score of `?name=...` under each loaded model, in model-name order."""
    models = list(registry.models.values())
    # Batched on the model thread with other requests for the same model (app/serving/batching.py).
    scores = await asyncio.gather(
        *(batching.score(m, [q.name], "name", indexed=False) for m in models))
    results = []
    for m, (s,) in zip(models, scores, strict=True):
        entry = dataclasses.asdict(score_json(s))  # the score route's JSON, with two fields
        results.append({"model": m.name, "type": m.meta.model_type, **entry})
    return json_response({"name": q.name, "normalized": s.normalized, "results": results})
