"""A real server for end-to-end tests: a free loopback port and a uvicorn subprocess."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT = 60.0  # seconds for the server to load the models and answer /readyz


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def uvicorn_command(port: int) -> list[str]:
    return [sys.executable, "-m", "uvicorn", "--factory", "app.main:create_app",
            "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]


def serve_command(port: int, models_dir: Path) -> list[str]:
    return [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
            "--models-dir", str(models_dir)]


@contextmanager
def live_server(models_dir: Path, cli: bool = False) -> Iterator[str]:
    """Serve models_dir (`uvicorn --factory app.main:create_app`, or `namelab serve` with
    cli=True) on a free loopback port; yields the base URL once /readyz answers 200."""
    with live_process(models_dir, cli) as (base, _):
        yield base


@contextmanager
def live_process(models_dir: Path, cli: bool = False, env: dict[str, str] | None = None,
                 wrap: str = "") -> Iterator[tuple[str, subprocess.Popen]]:
    """live_server's base URL and its process, with `env` added to the environment; `wrap`:
    Python code run before `namelab serve` in its process (cli=True)."""
    port = free_port()
    cmd = serve_command(port, models_dir) if cli else uvicorn_command(port)
    if wrap:
        cmd = [sys.executable, "-c", f"{wrap}\nimport sys\nfrom app.cli import main\n"
               f"sys.exit(main({cmd[3:]!r}))"]
    env = {**os.environ, "NAMELAB_MODELS_DIR": str(models_dir), **(env or {})}
    # The log goes to a file, not a pipe: a full pipe would block the server.
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while True:
                if proc.poll() is not None:
                    log.seek(0)
                    raise RuntimeError(f"server exited with {proc.returncode}:\n"
                                       f"{log.read().decode(errors='replace')}")
                try:
                    if httpx.get(base + "/readyz", timeout=1.0).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"server did not answer on {base} in {START_TIMEOUT}s")
                time.sleep(0.1)
            yield base, proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def run_async(coro: Coroutine):
    """asyncio.run on a thread of its own: Playwright's sync API (the browser tests) keeps an
    event loop running on the main thread for the rest of the session."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()  # its result, or its exception


def served(monkeypatch, batcher) -> list[int]:
    """The sizes of the chunks `batcher` (an app.serving.batching.Batcher) serves from now on
    (pieces per chunk), counted by wrapping its `serve`."""
    sizes: list[int] = []
    serve = batcher.serve

    def counted(m, items, *rest):  # a job of the model thread (app/serving/worker.py), as serve is
        sizes.append(len(items))
        return (yield from serve(m, items, *rest))

    monkeypatch.setattr(batcher, "serve", counted)
    return sizes
