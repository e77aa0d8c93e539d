"""One name under every loaded model, side by side."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app import services
from app.api.schemas import CompareEntry, CompareResponse
from app.params import NameParam
from app.web import RegistryDep
from app.worker import model_thread

router = APIRouter(prefix="/api", tags=["scoring"])


@router.get("/compare", summary="Score one name under every model")
@model_thread
def compare_name(registry: RegistryDep, q: Annotated[NameParam, Query()]) -> CompareResponse:
    """The score of `?name=...` under each loaded model, in model-name order."""
    results = []
    for m in registry.models.values():
        (s,) = services.score(m, [q.name], "name", indexed=False)
        results.append(CompareEntry(model=m.name, type=m.meta.model_type,
                                    **CompareEntry.fields_of(s)))
    return CompareResponse(name=q.name, normalized=s.normalized, results=results)
