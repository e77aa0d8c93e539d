"""Server-rendered HTML pages (Jinja2 templates from templates/, SVG plots from app/pages/plots.py).

Every page works without JavaScript: forms use GET, so every result has a shareable URL.
"""

from __future__ import annotations

from fastapi import FastAPI

from app.pages import bigram, embeddings, explore, models, overview, sample, score, train

ROUTERS = (overview, bigram, embeddings, sample, score, models, explore, train)


def install(app: FastAPI) -> None:
    """The page routers. Their error pages come from app/web/errors.py's handlers."""
    for module in ROUTERS:
        app.include_router(module.router, include_in_schema=False)

