"""Docker helpers for the deployment tests: run a command, start a hardened container, wait for
its health check. TEST_ID names this session's images, containers and compose projects."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.live import free_port

ROOT = Path(__file__).resolve().parents[2]
TEST_ID = f"namelab-test-{os.getpid()}"
SHIPPED = sorted(p.stem for p in (ROOT / "models").glob("*.safetensors"))


def docker(*args: str, check: bool = True, timeout: float = 120) -> str:
    """`docker ARGS`'s output; with check=False, failures and time-outs give what it printed
    (clean-up goes on when a busy engine is slow)."""
    try:
        proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        if check:
            raise
        return ""
    if check and proc.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)}: status {proc.returncode}\n"
                             f"{proc.stdout}{proc.stderr}")
    return proc.stdout.strip()


def container_logs(cid: str) -> str:
    """What the container wrote, stdout and stderr."""
    proc = subprocess.run(["docker", "logs", cid], capture_output=True, text=True, timeout=30)
    return proc.stdout + proc.stderr


def inspect(what: str) -> dict:
    return json.loads(docker("inspect", what))[0]


HARDENED = ("--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL",
            "--security-opt", "no-new-privileges")


@dataclass
class Container:
    id: str
    url: str


def start(image: str, *options: str) -> Container:
    """The image run detached with the hardening options, port 8000 on a free loopback port."""
    cid = docker("run", "-d", "--label", TEST_ID, *HARDENED, "-p", "127.0.0.1::8000",
                 *options, image)
    port = docker("port", cid, "8000/tcp").splitlines()[0].rsplit(":", 1)[1]
    return Container(cid, f"http://127.0.0.1:{port}")


def wait_healthy(cid: str, timeout: float) -> float:
    """Seconds from the container's start until Docker reports it healthy."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        state = inspect(cid)["State"]
        if state["Health"]["Status"] == "healthy":
            return time.monotonic() - t0
        if not state["Running"]:
            pytest.fail(f"container exited with {state['ExitCode']}:\n{container_logs(cid)}")
        time.sleep(0.5)
    pytest.fail(f"not healthy after {timeout:g} s:\n{container_logs(cid)}")


def get_json(url: str, **kwargs) -> dict:
    response = httpx.get(url, timeout=30, **kwargs)
    assert response.status_code == 200, response.text
    return response.json()


@contextmanager
def compose_stack(app_image: str, proxy_image: str, replicas: int, project: str = TEST_ID,
                  env: dict[str, str] | None = None) -> Iterator[tuple[str, list[str]]]:
    """deploy/compose.yaml with `replicas` Namelab replicas behind the balancer, published on a
    free loopback port; yields (the balancer's URL, the docker-compose command) once every
    replica answers through it (`env`: compose's variables, e.g. NAMELAB_TRAIN_TOKEN). Removed
    at the end, its volumes too."""
    port = free_port()
    env = {**os.environ, "NAMELAB_IMAGE": app_image, "NAMELAB_PROXY_IMAGE": proxy_image,
           "NAMELAB_PUBLISH": f"127.0.0.1:{port}", **(env or {})}
    compose = ["docker-compose", "--no-ansi", "-f", str(ROOT / "deploy" / "compose.yaml"),
               "-p", project]

    def run(*args: str) -> str:
        proc = subprocess.run([*compose, *args], env=env, capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, f"docker-compose {' '.join(args)}:\n{proc.stderr}"
        return proc.stdout

    url = f"http://127.0.0.1:{port}"
    try:
        run("up", "-d", "--scale", f"namelab={replicas}")
        wait_replicas(url, replicas, timeout=300)
        yield url, compose
    finally:
        try:
            subprocess.run([*compose, "down", "--volumes", "--remove-orphans", "--timeout", "10"],
                           env=env, capture_output=True, timeout=300)
        finally:  # whatever `down` left, on a slow engine
            left = docker("ps", "-aq", "--filter", f"label=com.docker.compose.project={project}",
                          check=False).split()
            if left:
                docker("rm", "-f", *left, check=False, timeout=300)
            docker("network", "rm", f"{project}_default", check=False)


def wait_replicas(url: str, replicas: int, timeout: float) -> None:
    """Until `replicas` different replicas have answered /readyz through the balancer."""
    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            r = httpx.get(url + "/readyz", timeout=5)
            if r.status_code == 200:
                seen.add(r.headers["x-namelab-replica"])
                if len(seen) >= replicas:
                    return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"{len(seen)} of {replicas} replicas answered through {url} in {timeout:g} s")
