"""Dependencies shared by the routers: the loaded models and the settings.

`async def`, though they never await: FastAPI runs a plain `def` dependency in its thread pool,
and a hop there and back costs more than these lookups.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.config import Settings
from app.registry import LoadedModel, Registry


async def get_registry(request: Request) -> Registry:
    return request.app.state.registry


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_model(model: str,
                    registry: Annotated[Registry, Depends(get_registry)]) -> LoadedModel:
    """The `{model}` path parameter resolved to a loaded model (404 listing the available)."""
    return registry.get(model)


RegistryDep = Annotated[Registry, Depends(get_registry)]
ModelDep = Annotated[LoadedModel, Depends(get_model)]
