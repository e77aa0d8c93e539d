"""The Dockerfile and .dockerignore, checked without a Docker engine (there is none here): what
the image must be, and the commands it runs, run here."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
# Instructions, with line continuations joined and comments dropped.
INSTRUCTIONS = [
    line.strip()
    for line in re.sub(r"\\\n", " ", DOCKERFILE).splitlines()
    if line.strip() and not line.lstrip().startswith("#")
]


def instructions(keyword: str) -> list[str]:
    return [x.split(None, 1)[1] for x in INSTRUCTIONS if x.split(None, 1)[0] == keyword]


def test_slim_python_base():
    assert instructions("FROM") == ["python:3.11-slim"]


def test_cpu_only_torch_then_the_dependencies_then_the_code():
    def at(predicate) -> int:
        return next(i for i, x in enumerate(INSTRUCTIONS) if predicate(x))

    torch = at(lambda x: "download.pytorch.org/whl/cpu" in x)
    pyproject = at(lambda x: x == "COPY pyproject.toml ./")
    deps = at(lambda x: "pip install -r /tmp/requirements.txt" in x)
    code = at(lambda x: x.startswith("COPY app/"))
    assert torch < pyproject < deps < code
    assert "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu" \
        in INSTRUCTIONS[torch]


def test_the_dependency_layer_lists_pyprojects_dependencies():
    run = next(x for x in instructions("RUN") if "tomllib" in x)
    listing = run.split(">", 1)[0]  # the python -c command, as the shell in the image runs it
    listing = listing.replace("python ", f"{sys.executable} ", 1)
    out = subprocess.run(["sh", "-c", listing], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout.splitlines()
    expected = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert out == expected and "torch==2.13.0" in out


def test_runs_as_a_non_root_user_with_the_shipped_models():
    users = instructions("USER")
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert "COPY models/ models/" in INSTRUCTIONS
    assert any("chmod -R a+rX" in x for x in instructions("RUN"))


def test_healthcheck_asks_healthz_on_port_8000():
    (check,) = instructions("HEALTHCHECK")
    assert "http://127.0.0.1:8000/healthz" in check
    code = re.search(r'"-c", "(.*)"\]', check).group(1)
    compile(code, "HEALTHCHECK", "exec")
    assert instructions("EXPOSE") == ["8000"]


def test_serves_with_uvicorn_workers_from_the_settings_on_port_8000():
    (cmd,) = instructions("CMD")
    assert cmd == '["namelab", "serve", "--host", "0.0.0.0", "--port", "8000"]'
    env = " ".join(instructions("ENV"))
    assert "NAMELAB_WORKERS=1" in env  # namelab serve runs uvicorn with that many workers
    from app.cli import build_parser

    args = build_parser().parse_args(["serve", "--host", "0.0.0.0", "--port", "8000"])
    assert args.command == "serve" and args.workers is None  # so NAMELAB_WORKERS decides


def test_dockerignore_is_an_allow_list():
    lines = [x.strip() for x in (ROOT / ".dockerignore").read_text().splitlines()
             if x.strip() and not x.startswith("#")]
    assert lines[0] == "*"
    allowed = {x[1:] for x in lines if x.startswith("!")}
    assert allowed == {"pyproject.toml", "README.md", "app/", "templates/", "static/",
                       "models/*.safetensors"}
    assert "models/.*" in lines  # half-written checkpoints (.NAME.safetensors.*.tmp) stay out
    copied = {x.split()[0] for x in instructions("COPY")}
    assert copied <= allowed | {"pyproject.toml", "README.md", "app/", "templates/", "static/",
                                "models/"}
