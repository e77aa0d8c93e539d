"""The real server in a subprocess: starts with the valid models and reports the refused ones;
with no valid model it exits non-zero with one clear line (no traceback)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.live import free_port

ROOT = Path(__file__).resolve().parents[1]
DEADLINE = 120  # seconds; a bound for slow machines, not a timing assumption


def run(cmd: list[str], models: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "NAMELAB_MODELS_DIR": str(models), "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=DEADLINE)


def serve(models: Path, port: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "app.cli", "serve", "--models-dir", str(models),
            "--port", str(port), *extra]


def uvicorn(port: int) -> list[str]:
    return [sys.executable, "-m", "uvicorn", "--factory", "app.main:create_app",
            "--host", "127.0.0.1", "--port", str(port)]


@pytest.fixture
def mixed(models_dir, tmp_path) -> Path:
    """Two good models and three bad files."""
    folder = tmp_path / "models"
    folder.mkdir()
    for name in ("bigram", "mlp"):
        shutil.copy(models_dir / f"{name}.safetensors", folder)
    (folder / "evil.pt").write_bytes(b"\x80\x04not really a pickle")
    (folder / "cut.safetensors").write_bytes((folder / "mlp.safetensors").read_bytes()[:500])
    (folder / "empty.safetensors").write_bytes(b"")
    return folder


@pytest.fixture
def only_bad(mixed) -> Path:
    for name in ("bigram", "mlp"):
        (mixed / f"{name}.safetensors").unlink()
    return mixed


def assert_one_line_failure(proc: subprocess.CompletedProcess, status: int, *fragments: str):
    assert proc.returncode == status, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [x for x in proc.stderr.splitlines() if "no valid model" in x]
    assert len(lines) == 1, proc.stderr
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.slow
def test_serve_with_an_empty_folder_exits_with_one_line(tmp_path):
    proc = run(serve(tmp_path, free_port()), tmp_path)
    assert_one_line_failure(proc, 3, f"no valid model in {tmp_path}", "no .safetensors files")


@pytest.mark.slow
def test_uvicorn_factory_with_only_bad_models_exits_with_one_line(only_bad):
    proc = run(uvicorn(free_port()), only_bad)
    assert_one_line_failure(proc, 3, "evil.pt", "pickle", "cut.safetensors", "truncated",
                            "empty.safetensors")


@pytest.mark.slow
def test_serve_with_workers_checks_the_models_before_forking(only_bad):
    # uvicorn's supervisor exits 0 when a worker fails to start: the CLI checks first.
    proc = run(serve(only_bad, free_port(), "--workers", "2"), only_bad)
    assert_one_line_failure(proc, 1, "namelab serve: error:", "evil.pt")


@pytest.mark.slow
def test_uvicorn_without_a_models_folder_exits_with_one_line(tmp_path):
    proc = run(uvicorn(free_port()), tmp_path / "missing")
    assert proc.returncode == 3
    assert "Traceback" not in proc.stderr
    assert "does not exist" in proc.stderr


@pytest.mark.slow
def test_server_starts_with_the_valid_models_and_reports_the_refused(mixed):
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(serve(mixed, port), cwd=ROOT, env=env, stderr=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + DEADLINE
        while True:
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "server did not start"
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        models = httpx.get(f"{url}/api/models", timeout=10).json()
        assert sorted(m["name"] for m in models) == ["bigram", "mlp"]
        ready = httpx.get(f"{url}/readyz", timeout=10).json()
        assert ready["models"] == ["bigram", "mlp"]
        assert sorted(ready["refused"]) == ["cut.safetensors", "empty.safetensors", "evil.pt"]
        assert "pickle" in ready["refused"]["evil.pt"]
    finally:
        proc.terminate()
        _, log = proc.communicate(timeout=DEADLINE)
    refused = [x for x in log.splitlines() if "refused checkpoint" in x]
    assert len(refused) == 3, log
    for name, why in (("evil.pt", "pickle"), ("cut.safetensors", "truncated"),
                      ("empty.safetensors", "not a valid safetensors")):
        assert any(name in x and why in x for x in refused), log
    assert '"path": "/api/models", "status": 200' in log  # the structured request log


def record_servers(monkeypatch) -> list[tuple[object, dict]]:
    """Servers app.serving.connections.serve would run: (their uvicorn.Config, how), never run."""
    import app.serving.connections

    runs = []

    def run(self):
        runs.append((self.config, {"grace": self.grace}))
        self.started = True

    class Supervisor:
        def __init__(self, config, sockets, grace):
            runs.append((config, {"workers": True, "grace": grace}))
            for sock in sockets:
                sock.close()

        def run(self):
            pass

    monkeypatch.setattr(app.serving.connections.GracefulServer, "run", run)
    monkeypatch.setattr(app.serving.connections, "GracefulMultiprocess", Supervisor)
    return runs


def test_serve_hands_the_settings_to_uvicorn(monkeypatch, models_dir):
    from app.cli import main
    from app.serving.connections import LimitedHttpTools

    runs = record_servers(monkeypatch)
    monkeypatch.setenv("NAMELAB_KEEP_ALIVE_SECONDS", "90")
    monkeypatch.setenv("NAMELAB_MAX_CONNECTIONS", "300")
    monkeypatch.setenv("NAMELAB_SHUTDOWN_GRACE_SECONDS", "5")
    monkeypatch.setenv("NAMELAB_MODELS_DIR", "/restored/after/the/test")
    assert main(["serve", "--models-dir", str(models_dir), "--port", "8123"]) == 0
    config, how = runs[-1]
    assert not isinstance(config.app, str)  # one worker: the app itself
    assert (config.host, config.port, config.log_level, config.access_log) == (
        "127.0.0.1", 8123, "info", False)
    assert config.timeout_keep_alive == 90 and config.timeout_graceful_shutdown == 4
    assert how == {"grace": 5.0}
    assert issubclass(config.http, LimitedHttpTools) and config.http.max_connections == 300

    assert main(["serve", "--models-dir", str(models_dir), "--workers", "3", "--port",
                 str(free_port())]) == 0
    config, how = runs[-1]
    assert config.app == "app.main:create_app" and config.factory and config.workers == 3
    assert how == {"workers": True, "grace": 5.0} and config.timeout_graceful_shutdown == 4
    assert config.http == "app.serving.connections:FromEnvironment"  # the workers read NAMELAB_*
    assert os.environ["NAMELAB_MODELS_DIR"] == str(models_dir.resolve())  # for the workers


def test_serve_reads_the_environment_when_not_given_flags(monkeypatch, models_dir):
    """As in the Docker image: `docker run -e NAMELAB_MODELS_DIR=... -e NAMELAB_PORT=...`."""
    from app.cli import main

    runs = record_servers(monkeypatch)
    monkeypatch.setenv("NAMELAB_MODELS_DIR", str(models_dir))
    monkeypatch.setenv("NAMELAB_HOST", "0.0.0.0")
    monkeypatch.setenv("NAMELAB_PORT", "9001")
    assert main(["serve"]) == 0
    config, _ = runs[-1]
    assert (config.host, config.port) == ("0.0.0.0", 9001)
    assert config.app.state.settings.models_dir == models_dir
