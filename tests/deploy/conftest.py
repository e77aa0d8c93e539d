"""Docker fixtures: the images, built once per session by deploy/images.sh (as `make image` does)
under test tags. Every container and image the tests made is removed at the end.

The tests need a Docker engine (`make test` installs and starts one). Without it they are
skipped locally and fail in CI (CI=true), where a missing engine must not pass unnoticed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from tests.deploy.docker import ROOT, TEST_ID, Container, docker, start


@dataclass(frozen=True)
class Images:
    app: str
    proxy: str


@pytest.fixture(scope="session")
def images() -> Iterator[Images]:
    engine = subprocess.run(["docker", "info"], capture_output=True)
    if engine.returncode != 0:
        message = "no Docker engine answers; `deploy/images.sh engine` installs and starts one"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    tags = Images(app=f"{TEST_ID}:app", proxy=f"{TEST_ID}:proxy")
    env = {**os.environ, "IMAGE": tags.app, "PROXY_IMAGE": tags.proxy, "PYTHON": sys.executable}
    try:
        build = subprocess.run([ROOT / "deploy" / "images.sh"], env=env, capture_output=True,
                               text=True, timeout=1800)
        assert build.returncode == 0, f"deploy/images.sh failed:\n{build.stderr}"
        yield tags
    finally:
        containers = docker("ps", "-aq", "--filter", f"label={TEST_ID}", check=False).split()
        if containers:
            docker("rm", "-f", *containers, check=False, timeout=300)
        docker("rmi", tags.app, tags.proxy, check=False, timeout=300)


@pytest.fixture
def run(images) -> Iterator[Callable[..., Container]]:
    """run(*options): the app's image started hardened (tests/deploy/docker.py's start); the
    containers one test started are removed after it, so no idle server outlives its test."""
    started: list[Container] = []

    def run_(*options: str) -> Container:
        started.append(start(images.app, *options))
        return started[-1]

    yield run_
    if started:
        docker("rm", "-f", *(c.id for c in started), check=False, timeout=300)
