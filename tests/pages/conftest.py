"""Browser fixtures: a real uvicorn on a free loopback port, and Debian's Chromium via Playwright.

Playwright's own browser download does not work on these machines, so the tests drive
/usr/bin/chromium (`make chromium` installs it). Without it the browser tests are skipped
locally and fail in CI (CI=true), where a missing browser must not pass unnoticed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.live import live_server

CHROMIUM = Path(os.environ.get("NAMELAB_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-quic", "--no-first-run",
                 "--disable-sync"]
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
    # a bound for a busy machine (a page that computes a map, CI running beside other work),
    # not a timing target: Playwright's default of 30 s failed once on a loaded machine
    context.set_default_navigation_timeout(120_000)
    p = context.new_page()
    console.watch(p)
    yield p
    context.close()


@pytest.fixture(scope="session")
def shipped_url() -> Iterator[str]:
    """A real server on the project's own models/ (the shipped checkpoints)."""
    with live_server(Path(__file__).resolve().parents[2] / "models") as url:
        yield url
