"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request

from app.api.schemas import NOT_READY, Health, Ready

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the process answers")
def healthz() -> Health:
    """Always `{"status": "ok"}` while the process serves requests."""
    return Health()


@router.get("/readyz", summary="Readiness: the models are loaded", responses=NOT_READY)
def readyz(request: Request) -> Ready:
    """`{"status": "ready", "models": [...]}` once the models are loaded; 503 before."""
    registry = getattr(request.app.state, "registry", None)
    if registry is None or not registry.models:
        raise HTTPException(503, "models not loaded")
    return Ready(models=registry.names())
