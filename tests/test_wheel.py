"""Namelab's own wheel, installed into a fresh venv, serves the shipped models, its templates and
its static files from any working directory: they travel inside the package (pyproject.toml)."""

from __future__ import annotations

import os
import site
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.live import free_port

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted(p.name for p in (ROOT / "models").glob("*.safetensors"))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--wheel-dir", str(out), str(ROOT)],
                   check=True, capture_output=True, timeout=300)
    (path,) = out.glob("namelab-*.whl")
    return path


def test_the_wheel_carries_templates_static_files_and_models(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder, pattern in (("templates", "*.html"), ("static", "*"), ("models", "*.safetensors")):
        expected = {f"app/{folder}/{p.name}" for p in (ROOT / folder).glob(pattern)}
        assert expected and expected <= names, folder
    # the names' history (app/store/history.py)
    assert "app/models/history/ssa.safetensors" in names
    assert not any(n.startswith("tests/") or "/." in n for n in names)


@pytest.mark.slow
def test_installed_wheel_serves_the_shipped_models_from_another_directory(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    # The dependencies (torch is 1 GB installed) come from this environment, after the venv's
    # own site-packages: Namelab itself comes from the wheel only.
    (purelib,) = Path(python).parent.parent.glob("lib/python3*/site-packages")
    (purelib / "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run([python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                    str(wheel)], check=True, capture_output=True, timeout=300)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("NAMELAB_") and k != "PYTHONPATH"}
    where = subprocess.run([python, "-c", "import app; print(app.__file__)"], cwd=elsewhere,
                           env=env, capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(purelib)), where

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with open(tmp_path / "server.log", "wb") as log:
        server = subprocess.Popen([env_dir / "bin" / "namelab", "serve", "--port", str(port)],
                                  cwd=elsewhere, env={**env, "OMP_NUM_THREADS": "1"},
                                  stdout=log, stderr=subprocess.STDOUT)
        try:
            ready = wait_ready(base, server, tmp_path / "server.log")
            assert sorted(m + ".safetensors" for m in ready["models"]) == SHIPPED
            assert ready["refused"] == {}
            page = httpx.get(base + "/", timeout=30)
            assert page.status_code == 200 and "text/html" in page.headers["content-type"]
            css = httpx.get(base + "/static/style.css", timeout=10)
            assert css.status_code == 200 and css.text == (ROOT / "static/style.css").read_text()
            mildred = httpx.get(base + "/api/history?name=mildred", timeout=30)
            assert mildred.status_code == 200 and mildred.json()["in_records"]
        finally:
            server.terminate()
            server.wait(timeout=30)


def wait_ready(base: str, server: subprocess.Popen, log: Path, timeout: float = 120) -> dict:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"server exited with {server.returncode}:\n{log.read_text()}")
        try:
            response = httpx.get(base + "/readyz", timeout=1)
            if response.status_code == 200:
                return response.json()
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"no /readyz in {timeout} s:\n{log.read_text()}")
