"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app.api.schemas import NOT_READY, Batched, Health, Ready
from app.serving import batching

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> Health:
    """Always `{"status": "ok"}` while the process serves requests."""
    return Health()


@router.get("/readyz", summary="Readiness: the models are loaded", response_model=Ready,
            responses=NOT_READY)
async def readyz(request: Request) -> Any:
    """`{"status": "ready", "models": [...], "batched": {model: {scoring, sampling}},
    "refused": {file: why}}` once the models are loaded; 503 before."""
    registry = getattr(request.app.state, "registry", None)
    if registry is None or not registry.models:
        # A response, not an HTTPException: the pages turn those into HTML outside /api.
        return JSONResponse(status_code=503, content={"detail": "models not loaded"})
    return Ready(models=registry.names(), refused=registry.refused,
                 batched={name: Batched(**b) for name, b in batching.batched(registry).items()})
