"""Helpers of the hot-reload, users' models and token tests: a folder of models the test owns,
files put into it atomically (as `namelab train` writes them), and a bounded wait for what the
server serves to change."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app

POLLS = 400  # looks at the server, at most, before a wait fails
PAUSE = 0.025  # seconds between two looks (not what the test asserts: the count bounds it)


def folder_of(tmp_path: Path, models_dir: Path, names=("bigram", "mlp")) -> Path:
    """A models folder of the test's own, with copies of the session's models `names`."""
    out = tmp_path / "models"
    out.mkdir()
    for name in names:
        shutil.copyfile(models_dir / f"{name}.safetensors", out / f"{name}.safetensors")
    return out


def app_of(folder: Path, **settings) -> TestClient:
    """A client of a real app serving `folder` (start it with `with`), scanning it every
    0.05 s unless `reload_seconds` says otherwise."""
    settings = {"reload_seconds": 0.05, **settings}
    return TestClient(create_app(Settings(models_dir=folder, **settings)))


def put(source: Path, target: Path) -> Path:
    """Copy `source` to `target` atomically: a temporary file beside it, then a rename."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    shutil.copyfile(source, tmp)
    os.replace(tmp, target)
    return target


def write(target: Path, data: bytes) -> Path:
    """Write bytes to `target` atomically."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, target)
    return target


def wait_until(look: Callable[[], object], what: str) -> object:
    """look() until it returns something true (returned), at most POLLS times."""
    for _ in range(POLLS):
        seen = look()
        if seen:
            return seen
        time.sleep(PAUSE)
    raise AssertionError(f"after {POLLS} looks: {what}")


def served(client) -> dict[str, dict]:
    """The cards of /api/models, by name."""
    return {card["name"]: card for card in client.get("/api/models").json()}


def wait_served(client, predicate: Callable[[dict[str, dict]], bool], what: str) -> dict:
    def look() -> dict[str, dict] | None:
        cards = served(client)
        return cards if predicate(cards) else None

    return wait_until(look, what)


def refused(client) -> dict[str, str]:
    return client.get("/readyz").json()["refused"]
