"""The loaded models and their cards."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.schemas import NOT_FOUND, ModelCard
from app.serving.pagecache import cacheable
from app.serving.worker import model_thread
from app.web.deps import ModelDep, RegistryDep

router = APIRouter(prefix="/api", tags=["models"])


@router.get("/models", summary="List the loaded models")
@cacheable
@model_thread
def list_models(registry: RegistryDep) -> list[ModelCard]:
    """The card of every loaded model, in name order."""
    return [ModelCard.of(m) for m in registry.models.values()]


@router.get("/models/{model}", summary="One model's card", responses=NOT_FOUND)
@cacheable
@model_thread
def get_model(m: ModelDep) -> ModelCard:
    """Type, hyperparameters, parameter count, vocab, dataset (spec, words, sha256),
    train/val/test NLL, training time, creation time and loss history."""
    return ModelCard.of(m)
