"""The loaded models."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import RegistryDep
from app.api.schemas import ModelSummary

router = APIRouter(prefix="/api", tags=["models"])


@router.get("/models", summary="List the loaded models")
def list_models(registry: RegistryDep) -> list[ModelSummary]:
    """Every loaded model: name, type, parameter count, dataset and train/val/test NLL."""
    return [ModelSummary.of(m) for m in registry.models.values()]
