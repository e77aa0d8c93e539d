"""The loaded models and their cards."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response

from app.api.schemas import NOT_FOUND, ModelCard
from app.serving.pagecache import cacheable
from app.serving.worker import model_thread
from app.web.deps import ModelDep, RegistryDep, TrainerDep

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


@router.delete("/models/{model}", summary="Delete a user's model", status_code=204,
               dependencies=[TrainerDep], responses={
                   **NOT_FOUND, 401: {"description": "NAMELAB_TRAIN_TOKEN is set and the "
                                      "request does not carry it"},
                   403: {"description": "a shipped model (only users' models can be "
                                        "deleted), or deleting is off on this server"},
                   409: {"description": "the model's file cannot be removed"}})
async def delete_model(model: str, registry: RegistryDep, request: Request) -> Response:
    """Remove a user's model: its file is deleted, and the answer comes once the model is no
    longer served (every page and route: app/serving/reloading.py)."""
    path = registry.user_file(model)  # 404 unknown, 403 shipped
    try:
        path.unlink(missing_ok=True)
    except OSError as e:
        raise HTTPException(409, f"model {model!r} cannot be deleted: its file cannot be "
                                 f"removed ({e.strerror})") from None
    await request.app.state.reloader.sync()
    return Response(status_code=204)
