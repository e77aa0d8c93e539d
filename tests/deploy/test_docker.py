"""The image, built by deploy/images.sh and run as a hardened container: read-only root, a tmpfs
/tmp, no capabilities, no new privileges, a non-root user; healthy within its start period;
serving the shipped models, or a read-only host folder instead; refusing a folder with no valid
model in one line; stopping on SIGTERM within 10 s with the requests in flight answered."""

from __future__ import annotations

import asyncio
import re
import time

import httpx
import pytest

from tests.deploy.docker import (
    ROOT,
    SHIPPED,
    container_logs,
    docker,
    get_json,
    inspect,
    wait_healthy,
)

pytestmark = [pytest.mark.docker, pytest.mark.slow]
NAMES = "emma olivia liam noah sophia jose zoe xavier amelia harper".split()


def test_image_is_one_wheel_install_with_no_build_tools(images):
    listing = docker("run", "--rm", "--entrypoint", "sh", images.app, "-c",
                     "command -v gcc cc pip pip3; "
                     "ls /opt/namelab /opt/venv/lib/python3*/site-packages;"
                     " ls / /src /wheelhouse 2>&1; find / -xdev -name '*.whl' 2>/dev/null",
                     check=False)
    assert "gcc" not in listing and "/pip" not in listing  # no compiler, no pip
    assert "\npip\n" not in listing
    assert "namelab-0.1.0.dist-info" in listing and "__editable__" not in listing
    assert "/src" in listing and "No such file" in listing  # no source tree, no wheelhouse
    assert ".whl" not in listing
    sizes = docker("image", "inspect", "--format", "{{.Size}}", images.app)
    assert int(sizes) < 1.5e9  # ~1.1 GB, torch's CPU build most of it


def test_hardened_container_serves_the_shipped_models(images, run):
    c = run()
    start_period = inspect(images.app)["Config"]["Healthcheck"]["StartPeriod"] / 1e9
    assert wait_healthy(c.id, timeout=start_period + 30) < start_period

    host = inspect(c.id)["HostConfig"]
    assert host["ReadonlyRootfs"] and host["CapDrop"] == ["ALL"]
    assert host["SecurityOpt"] == ["no-new-privileges"] and "/tmp" in host["Tmpfs"]
    status = docker("exec", c.id, "cat", "/proc/1/status")
    assert re.search(r"^Uid:\s+10001\s+10001", status, re.M)  # the server, not root
    assert re.search(r"^CapEff:\s+0+$", status, re.M) and re.search(r"^NoNewPrivs:\s+1", status,
                                                                    re.M)
    denied = docker("exec", c.id, "sh", "-c", "touch /opt/venv/x || echo denied; "
                    "touch /tmp/x && echo tmp-ok", check=False)
    assert "denied" in denied and "tmp-ok" in denied

    ready = get_json(c.url + "/readyz")
    assert sorted(ready["models"]) == SHIPPED and ready["refused"] == {}
    for model in SHIPPED:
        body = {"n": 5, "seed": 42}
        first = httpx.post(f"{c.url}/api/models/{model}/sample", json=body, timeout=30)
        again = httpx.post(f"{c.url}/api/models/{model}/sample", json=body, timeout=30)
        assert first.status_code == 200 and first.json() == again.json()
        assert len(first.json()["names"]) == 5
        scored = httpx.post(f"{c.url}/api/models/{model}/score", json={"names": ["Emma"]},
                            timeout=30)
        assert scored.status_code == 200
        (result,) = scored.json()["results"]
        assert result["normalized"] == "emma" and result["log_prob"] < 0
    assert httpx.get(c.url + "/static/style.css", timeout=10).status_code == 200
    assert "<html" in httpx.get(c.url + "/", timeout=30).text


def test_a_read_only_host_models_folder_is_served_instead(run, tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    model = SHIPPED[0]
    (folder / f"mounted-{model}.safetensors").write_bytes(
        (ROOT / "models" / f"{model}.safetensors").read_bytes())
    folder.chmod(0o755)  # readable by the container's user; pytest's tmp folders are 0700
    (folder / f"mounted-{model}.safetensors").chmod(0o644)
    c = run("-v", f"{folder}:/models:ro", "-e", "NAMELAB_MODELS_DIR=/models")
    wait_healthy(c.id, timeout=300)
    assert get_json(c.url + "/readyz")["models"] == [f"mounted-{model}"]
    sample = httpx.post(f"{c.url}/api/models/mounted-{model}/sample", json={"n": 3, "seed": 1},
                        timeout=30)
    assert sample.status_code == 200 and len(sample.json()["names"]) == 3


def test_a_folder_with_no_valid_model_stops_the_container_with_one_line(run, tmp_path):
    folder = tmp_path / "models"
    folder.mkdir(mode=0o755)
    (folder / "broken.safetensors").write_bytes(b"not a checkpoint")
    (folder / "broken.safetensors").chmod(0o644)
    folder.chmod(0o755)
    c = run("-v", f"{folder}:/models:ro", "-e", "NAMELAB_MODELS_DIR=/models")
    status = int(docker("wait", c.id, timeout=300))
    logs = container_logs(c.id)
    assert status != 0, logs
    reasons = [line for line in logs.splitlines() if "no valid model" in line]
    assert len(reasons) == 1 and "broken.safetensors" in reasons[0], logs
    assert "Traceback" not in logs


def test_sigterm_stops_it_within_10_s_after_answering_the_requests_in_flight(run):
    c = run()
    wait_healthy(c.id, timeout=300)
    # Requests served one at a time, tens of ms each, so that many are still queued on the
    # server's one model thread when SIGTERM arrives: sampling through the Transformer's own
    # key/value decoder (never batched across requests); without it, many names under the
    # largest model.
    if "transformer" in SHIPPED:
        path, body = "/api/models/transformer/sample", {"n": 1000, "seed": 1}
    else:
        model = max(SHIPPED, key=lambda m: (ROOT / "models" / f"{m}.safetensors").stat().st_size)
        path, body = f"/api/models/{model}/score", {"names": NAMES * 50}

    def stop() -> float:
        t0 = time.monotonic()
        docker("stop", "-t", "10", c.id, timeout=30)  # SIGTERM; SIGKILL after 10 s
        return time.monotonic() - t0

    async def load_then_stop() -> tuple[list[int], float]:
        limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
        async with httpx.AsyncClient(base_url=c.url, limits=limits, timeout=60) as client:
            await asyncio.gather(*(client.get("/healthz") for _ in range(32)))  # 32 connections
            tasks = [asyncio.create_task(client.post(path, json=body)) for _ in range(32)]
            # Every request is written in the loop's first turns, on an open connection, before
            # the server can have answered one: at the first answer the rest are in the server.
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            # A moment for the server's event loop to read every request off its socket: a
            # request still unread when SIGTERM arrives is on a connection that looks idle, and
            # uvicorn closes idle connections at shutdown (the client's keep-alive race).
            await asyncio.sleep(0.3)
            stopped = asyncio.create_task(asyncio.to_thread(stop))
            responses = await asyncio.gather(*tasks)
            return [r.status_code for r in responses], await stopped

    statuses, stopped = asyncio.run(load_then_stop())
    assert stopped < 10
    assert inspect(c.id)["State"]["ExitCode"] == 0  # it stopped by itself, not killed
    assert statuses == [200] * 32
    # The server's own log: requests it answered after it got SIGTERM.
    after = container_logs(c.id).split("Shutting down", 1)[1]
    assert after.count(f'"path": "{path}", "status": 200') >= 1


def test_the_connection_limits_hold_in_the_image(run):
    """app/serving/connections.py in the container, through Docker's port mapping: the head's bytes,
    its header count and its time, and the number of connections."""
    from tests.test_connections import connect, exchange, get, read_answer, status

    c = run("-e", "NAMELAB_MAX_CONNECTIONS=8", "-e", "NAMELAB_MAX_HEADER_BYTES=8192",
            "-e", "NAMELAB_MAX_HEADERS=20", "-e", "NAMELAB_HEAD_TIMEOUT_SECONDS=2")
    wait_healthy(c.id, timeout=300)
    assert status(exchange(c.url, get("/healthz", b"X-Pad: " + b"a" * 7000))) == 200
    assert status(exchange(c.url, get("/healthz", b"X-Pad: " + b"a" * 9000))) == 431
    assert status(exchange(c.url, get("/healthz", *[b"X-%d: 1" % i for i in range(21)]))) == 431
    with connect(c.url) as silent:
        assert status(read_answer(silent)) == 408
    held = []
    try:
        while True:  # kept-alive connections (the health check holds none for long)
            sock = connect(c.url)
            sock.sendall(get("/healthz"))
            answer = read_answer(sock)
            held.append(sock)
            if status(answer) == 503:
                break
            assert status(answer) == 200 and len(held) <= 8
        assert b"at most 8 connections" in answer and len(held) >= 7
    finally:
        for sock in held:
            sock.close()


def test_a_connection_limit_over_the_descriptor_limit_stops_the_container_with_one_line(run):
    c = run("--ulimit", "nofile=256:256")  # the default 2,048 connections need 2,112
    status = int(docker("wait", c.id, timeout=300))
    logs = container_logs(c.id)
    assert status != 0, logs
    assert "NAMELAB_MAX_CONNECTIONS=2048 needs 2112 file descriptors but the limit is 256" in logs
    assert "Traceback" not in logs
