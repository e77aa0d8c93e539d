"""Logging set-up of a server process: the `namelab` loggers print to stderr beside uvicorn's."""

from __future__ import annotations

import logging


def configure(level: str) -> None:
    """The `namelab` loggers print to stderr next to uvicorn's (one handler, however many apps
    a process builds; records still propagate, so tests can capture them)."""
    logger = logging.getLogger("namelab")
    logger.setLevel(level.upper())
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        logger.addHandler(handler)
