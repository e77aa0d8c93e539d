"""Server-rendered HTML pages (Jinja2 templates from templates/)."""

from __future__ import annotations

from fastapi import FastAPI


def install(app: FastAPI) -> None:
    """Pages are added by their own issue; nothing is served as HTML yet."""
