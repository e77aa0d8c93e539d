"""The JSON API: one router per area, error handlers that turn domain errors into 4xx."""

from __future__ import annotations

from fastapi import FastAPI

from app.api import compare, health, models, sample, score, tables
from app.api.errors import install_handlers


def install(app: FastAPI) -> None:
    for area in (health, models, sample, score, compare, tables):
        app.include_router(area.router)
    install_handlers(app)
