"""One name under every loaded model, side by side."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Query

from app import batching
from app.api.deps import RegistryDep
from app.api.errors import normalized
from app.api.schemas import CompareEntry, CompareResponse, NameQuery

router = APIRouter(prefix="/api", tags=["scoring"])


@router.get("/compare", summary="Score one name under every model")
async def compare_name(registry: RegistryDep,
                       q: Annotated[NameQuery, Query()]) -> CompareResponse:
    """The score of `?name=...` under each loaded model, in model-name order."""
    models = list(registry.models.values())
    for m in models:
        norm = normalized(m, q.name, ("query", "name"))
    # Batched on the model thread with other requests for the same model (app/batching.py).
    scores = await asyncio.gather(*(batching.score(m, [q.name]) for m in models))
    results = [CompareEntry(model=m.name, type=m.meta.model_type, **CompareEntry.fields_of(s))
               for m, (s,) in zip(models, scores, strict=True)]
    return CompareResponse(name=q.name, normalized=norm, results=results)
