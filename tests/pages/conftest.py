"""Browser fixtures: a real uvicorn on a free loopback port, and Debian's Chromium via Playwright.

Playwright's own browser download does not work on these machines, so the tests drive
/usr/bin/chromium (`make chromium` installs it). Without it the browser tests are skipped
locally and fail in CI (CI=true), where a missing browser must not pass unnoticed.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("NAMELAB_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-quic", "--no-first-run",
                 "--disable-sync"]
START_TIMEOUT = 60.0  # seconds for uvicorn to load the models and answer /healthz


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def live_server(models_dir: Path) -> Iterator[str]:
    """`uvicorn app.main:create_app` serving models_dir; yields its base URL."""
    port = free_port()
    env = {**os.environ, "NAMELAB_MODELS_DIR": str(models_dir)}
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "app.main:create_app",
             "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while True:
                if proc.poll() is not None:
                    log.seek(0)
                    raise RuntimeError(f"uvicorn exited with {proc.returncode}:\n"
                                       f"{log.read().decode(errors='replace')}")
                try:
                    if httpx.get(base + "/healthz", timeout=1.0).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"uvicorn did not answer on {base} in {START_TIMEOUT}s")
                time.sleep(0.1)
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


@pytest.fixture(scope="session")
def base_url(models_dir) -> Iterator[str]:
    with live_server(models_dir) as url:
        yield url


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} not found; install it with `make chromium`"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


class Console:
    """What a page logged: console errors and uncaught exceptions."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def watch(self, page) -> None:
        page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        page.on("pageerror", lambda e: self.errors.append(str(e)))


@pytest.fixture
def console() -> Console:
    return Console()


@pytest.fixture
def page(browser, console):
    """A fresh page (desktop size) whose console errors land in `console`."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    p = context.new_page()
    console.watch(p)
    yield p
    context.close()
