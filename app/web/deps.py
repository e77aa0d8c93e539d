"""FastAPI dependencies of the JSON API and the pages: the registry, and a `{model}` path
parameter resolved to a loaded model (404 listing the available).

Dependencies are `async def`, though they never await: FastAPI runs a plain `def` dependency in
its thread pool, and a hop there and back costs more than these lookups.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.store.registry import LoadedModel, Registry


async def get_registry(request: Request) -> Registry:
    return request.app.state.registry


async def get_model(model: str,
                    registry: Annotated[Registry, Depends(get_registry)]) -> LoadedModel:
    """The `{model}` path parameter resolved to a loaded model (404 listing the available)."""
    return registry.get(model)


RegistryDep = Annotated[Registry, Depends(get_registry)]
ModelDep = Annotated[LoadedModel, Depends(get_model)]
