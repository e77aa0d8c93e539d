"""The JSON API: one router per area, error handlers that turn domain errors into 4xx."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from app.api import health, models
from app.registry import UnknownModel


def install(app: FastAPI) -> None:
    app.include_router(health.router)
    app.include_router(models.router)

    @app.exception_handler(UnknownModel)
    async def unknown_model(request: Request, exc: UnknownModel) -> JSONResponse:
        return JSONResponse(status_code=404, content={"detail": str(exc)})
