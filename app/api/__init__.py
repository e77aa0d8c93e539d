"""The JSON API: one router per area. Errors become 4xx in app/web/errors.py's handlers."""

from __future__ import annotations

from fastapi import FastAPI

from app.api import compare, era, explore, health, history, models, sample, score, tables, train


def install(app: FastAPI) -> None:
    for area in (health, models, sample, score, era, compare, history, tables, explore, train):
        app.include_router(area.router)
