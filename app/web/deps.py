"""FastAPI dependencies of the JSON API and the pages: the registry, and a `{model}` path
parameter resolved to a loaded model (404 listing the available).

Dependencies are `async def`, though they never await: FastAPI runs a plain `def` dependency in
its thread pool, and a hop there and back costs more than these lookups.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.domain.training import Training, TrainingOff
from app.store.registry import LoadedModel, Registry


async def get_registry(request: Request) -> Registry:
    return request.app.state.registry


async def get_model(model: str,
                    registry: Annotated[Registry, Depends(get_registry)]) -> LoadedModel:
    """The `{model}` path parameter resolved to a loaded model (404 listing the available)."""
    return registry.get(model)


RegistryDep = Annotated[Registry, Depends(get_registry)]
ModelDep = Annotated[LoadedModel, Depends(get_model)]


async def get_training(request: Request) -> Training:
    """The server's training jobs (503 when users' models, where jobs write, are off)."""
    training = getattr(request.app.state, "training", None)
    if training is None:
        raise TrainingOff("training is off on this server: the users' models folder "
                          "(NAMELAB_USER_MODELS_DIR) could not be created or written")
    return training


TrainingDep = Annotated[Training, Depends(get_training)]
