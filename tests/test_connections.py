"""The connection layer (app/serving/connections.py) against a real `namelab serve` process: the
head's size, its header count and its time, the number of connections, memory after a burst of huge
heads, and SIGTERM with a stuck model thread."""

from __future__ import annotations

import asyncio
import shutil
import signal
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.live import live_process, run_async

LIMITS = {"NAMELAB_MAX_CONNECTIONS": "16", "NAMELAB_MAX_HEADER_BYTES": "8192",
          "NAMELAB_MAX_HEADERS": "20", "NAMELAB_HEAD_TIMEOUT_SECONDS": "1",
          "OMP_NUM_THREADS": "1"}
BOUND = 30.0  # seconds: a bound for a slow machine, not a timing target


@pytest.fixture(scope="module")
def one_model(models_dir, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("one-model")
    shutil.copy(models_dir / "bigram.safetensors", folder)
    return folder


@pytest.fixture(scope="module")
def server(one_model):
    with live_process(one_model, cli=True, env=LIMITS) as (base, proc):
        yield base, proc


def address(base: str) -> tuple[str, int]:
    host, port = base.removeprefix("http://").split(":")
    return host, int(port)


def connect(base: str) -> socket.socket:
    sock = socket.create_connection(address(base), timeout=BOUND)
    return sock


def exchange(base: str, head: bytes) -> bytes:
    """Send a raw request head; the whole answer, until the server closes or has answered."""
    with connect(base) as sock:
        sock.sendall(head)
        return read_answer(sock)


def read_answer(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data or len(data) < answer_length(data):
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return data


def answer_length(data: bytes) -> int:
    head, _, _ = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(head) + 4 + int(value)
    return len(data)


def get(path: str = "/healthz", *headers: bytes) -> bytes:
    return b"\r\n".join([b"GET %s HTTP/1.1" % path.encode(), b"Host: x", *headers, b"", b""])


def rss(proc) -> int:
    lines = Path(f"/proc/{proc.pid}/status").read_text().splitlines()
    return next(int(x.split()[1]) * 1024 for x in lines if x.startswith("VmRSS"))


def status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


# --- the head: its size, its header count -----------------------------------------------------


def test_a_head_within_the_limit_is_served_and_one_over_it_gets_431(server):
    base, _ = server
    fits = get("/healthz", b"X-Pad: " + b"a" * 7000)
    assert status(exchange(base, fits)) == 200
    answer = exchange(base, get("/healthz", b"X-Pad: " + b"a" * 9000))
    assert status(answer) == 431 and b"at most 8192 bytes" in answer
    long_url = get("/healthz?" + "q" * 9000)
    assert status(exchange(base, long_url)) == 431


def test_too_many_header_fields_get_431(server):
    base, _ = server
    assert status(exchange(base, get("/healthz", *[b"X-%d: 1" % i for i in range(19)]))) == 200
    answer = exchange(base, get("/healthz", *[b"X-%d: 1" % i for i in range(21)]))
    assert status(answer) == 431 and b"at most 20 header fields" in answer


def send_for_ever(base: str, total: int) -> tuple[int, bytes]:
    """Send a head of `total` bytes (one header that never ends) until the server closes;
    what was sent, and what came back."""
    chunk = b"a" * 2**20
    sent = 0
    with connect(base) as sock:
        try:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Huge: ")
            while sent < total:
                sock.sendall(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        return sent, read_answer(sock)


@pytest.mark.slow
def test_four_heads_of_250_mb_are_cut_off_and_memory_stays(server):
    """The issue's case: four of 250 MB took the process from 510 MB to 1,586 MB, for good."""
    base, proc = server
    before = rss(proc)
    results = []
    threads = [threading.Thread(target=lambda: results.append(send_for_ever(base, 250 * 2**20)))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(BOUND * 4)
    assert len(results) == 4
    for sent, answer in results:
        assert sent < 64 * 2**20  # cut off (what the sockets' buffers held, at most)
        assert answer == b"" or status(answer) == 431
    assert rss(proc) - before < 32 * 2**20
    assert httpx.get(base + "/healthz", timeout=BOUND).status_code == 200


# --- the head's time --------------------------------------------------------------------------


def test_a_silent_connection_gets_408_and_is_closed(server):
    base, _ = server
    with connect(base) as sock:
        start = time.monotonic()
        answer = read_answer(sock)
    assert status(answer) == 408 and b"within 1 s" in answer
    assert time.monotonic() - start < BOUND


def test_a_head_sent_a_byte_at_a_time_is_closed_at_the_head_timeout(server):
    """Slowloris: every byte arrives before the keep-alive timeout, the head never ends."""
    base, _ = server
    with connect(base) as sock:
        start = time.monotonic()
        sent = 0
        try:
            for byte in get("/healthz", b"X-Slow: " + b"a" * 1000):
                sock.sendall(bytes([byte]))
                sent += 1
                time.sleep(0.05)
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = read_answer(sock)
    assert sent < 1000  # 50 s of bytes: it was closed long before (the timeout is 1 s)
    assert answer == b"" or status(answer) == 408
    assert time.monotonic() - start < BOUND


def test_a_kept_alive_connection_gets_a_new_head_timer_for_each_request(server):
    base, _ = server
    with connect(base) as sock:
        for _ in range(3):
            sock.sendall(get("/healthz"))
            assert status(read_answer(sock)) == 200
            time.sleep(1.5)  # idle between requests: the keep-alive timeout (75 s) applies


# --- the number of connections ----------------------------------------------------------------


def test_connections_beyond_the_limit_get_503_at_once(server):
    base, _ = server
    held = []
    try:
        for _ in range(16):  # 16 kept-alive connections (no head timer between requests)
            sock = connect(base)
            sock.sendall(get("/healthz"))
            assert status(read_answer(sock)) == 200
            held.append(sock)
        with connect(base) as extra:
            extra.sendall(get("/healthz"))
            answer = read_answer(extra)
        assert status(answer) == 503 and b"retry-after: 1" in answer.lower()
        assert b"at most 16 connections" in answer
        held.pop().close()
        deadline = time.monotonic() + BOUND
        while status(exchange(base, get("/healthz"))) != 200:  # the server saw it close
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        for sock in held:
            sock.close()


# --- memory after a burst of huge heads, under the default limits --------------------------


def burst(base: str, n: int, pad: int) -> list[int]:
    """n requests for /healthz with a header of `pad` bytes, 200 at once; their statuses (0:
    no answer). On a thread of its own: a test before may have left this one's loop running."""
    out: list[list[int]] = []
    thread = threading.Thread(target=lambda: out.append(asyncio.run(_burst(base, n, pad))))
    thread.start()
    thread.join()
    return out[0]


async def _burst(base: str, n: int, pad: int) -> list[int]:
    host, port = address(base)
    gate = asyncio.Semaphore(200)

    async def one() -> int:
        async with gate:
            reader, writer = await asyncio.open_connection(host, port)
            try:
                writer.write(get("/healthz", b"Connection: close", b"X-Pad: " + b"a" * pad))
                await writer.drain()
                answer = await reader.read()  # to EOF
            except ConnectionResetError:  # refused while it was still sending
                answer = b""
            writer.close()
            return status(answer) if answer else 0

    return await asyncio.gather(*(one() for _ in range(n)))


@pytest.mark.slow
def test_memory_returns_after_a_burst_of_huge_heads(one_model):
    env = {"OMP_NUM_THREADS": "1"}
    with live_process(one_model, cli=True, env=env) as (base, proc):
        assert status(exchange(base, get("/healthz"))) == 200
        before = rss(proc)
        # 2,000 heads just under the default 64 KiB limit (128 MB received), 200 at a time,
        # and 200 over it.
        codes = burst(base, 2000, 64 * 2**10 - 200)
        assert set(codes) == {200}
        codes = burst(base, 200, 70 * 2**10)
        assert set(codes) <= {431, 0}
        time.sleep(1)
        assert rss(proc) - before < 64 * 2**20
        assert httpx.get(base + "/healthz", timeout=BOUND).status_code == 200


# --- SIGTERM ----------------------------------------------------------------------------------

STUCK = """
import app.pages.models

def spin(*args, **kwargs):  # a model thread that never returns, as the issue's tick loop did
    while True:
        pass

app.pages.models.top_names = spin
"""


@pytest.mark.slow
def test_sigterm_stops_the_server_within_its_grace_while_the_model_thread_is_stuck(one_model):
    env = {"OMP_NUM_THREADS": "1", "NAMELAB_SHUTDOWN_GRACE_SECONDS": "2"}
    with live_process(one_model, cli=True, env=env, wrap=STUCK) as (base, proc):
        stuck = threading.Thread(target=lambda: cut_short(base + "/models/bigram"),
                                 daemon=True)
        stuck.start()
        time.sleep(1)  # the card's request holds the model thread
        assert httpx.get(base + "/healthz", timeout=BOUND).status_code == 200  # the loop runs
        start = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=BOUND)  # for good without the grace (uvicorn waits for the request)
        assert time.monotonic() - start < 2 + 5
        assert proc.returncode in (-signal.SIGTERM, 128 + signal.SIGTERM)


# --- start-up: the descriptor limit fits the connection limit ------------------------------


def test_start_up_raises_the_soft_descriptor_limit_to_fit_or_says_why(monkeypatch):
    import resource

    from app.serving.connections import SPARE_DESCRIPTORS, fit_descriptor_limit

    limits = {"now": (1024, 4096)}
    monkeypatch.setattr(resource, "getrlimit", lambda which: limits["now"])
    monkeypatch.setattr(resource, "setrlimit", lambda which, new: limits.update(now=new))
    fit_descriptor_limit(2048)
    assert limits["now"] == (2048 + SPARE_DESCRIPTORS, 4096)
    fit_descriptor_limit(100)  # fits already: left as it is
    assert limits["now"] == (2048 + SPARE_DESCRIPTORS, 4096)
    with pytest.raises(ValueError, match="NAMELAB_MAX_CONNECTIONS=8000 needs 8064 file "
                                         "descriptors but the limit is 4096"):
        fit_descriptor_limit(8000)


# --- a response leaves in one write ---------------------------------------------------------


class Socket:
    """The transport under the protocol's own: what reaches the socket, write by write."""

    def __init__(self) -> None:
        self.events: list[tuple[str, bytes]] = []  # ("write", data) or ("close", b"")
        self.closing = False

    def write(self, data: bytes) -> None:
        assert not self.closing, "written after close"
        self.events.append(("write", bytes(data)))

    def close(self) -> None:
        self.closing = True
        self.events.append(("close", b""))

    def is_closing(self) -> bool:
        return self.closing

    def get_extra_info(self, name: str, default=None):
        return {"peername": ("127.0.0.1", 5000), "sockname": ("127.0.0.1", 8000)}.get(
            name, default)

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


async def exchange_in_process(app, request: bytes) -> list[tuple[str, bytes]]:
    """`request` through Namelab's protocol (the limits of Settings()) serving `app(sock)` over
    a Socket; its events once the response is complete (and a turn more)."""
    import uvicorn
    from uvicorn.server import ServerState

    from app.config import Settings
    from app.serving.connections import protocol

    done = asyncio.Event()
    sock = Socket()

    async def app_then_done(scope, receive, send):
        await app(sock)(scope, receive, send)
        done.set()

    config = uvicorn.Config(app_then_done, lifespan="off", log_config=None, access_log=False)
    proto = protocol(Settings())(config, ServerState(), {}, asyncio.get_running_loop())
    proto.connection_made(sock)
    proto.data_received(request)
    await asyncio.wait_for(done.wait(), BOUND)
    await asyncio.sleep(0)  # the turn after the app's last write: flushed by then
    events = list(sock.events)
    proto.connection_lost(None)
    return events


def head_then_body(sock: Socket):
    """As every Starlette response: the head, then the body, as two messages. The whole answer
    is on the socket as soon as the body is sent, not a turn later: a late answer brings the
    client's next request late, too late to join the model thread's batch."""
    async def app(scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"5"), (b"content-type", b"text/plain")]})
        assert sock.events == []  # the head is held
        await send({"type": "http.response.body", "body": b"hello"})
        assert [kind for kind, _ in sock.events][:1] == ["write"]  # and sent with the body
    return app


def test_a_responses_head_and_body_reach_the_socket_in_one_write():
    """uvicorn writes them apart: a replica killed between the two writes sent a head with no
    body, which its balancer could no longer send to another replica (a truncated answer)."""
    events = run_async(exchange_in_process(head_then_body, get("/")))
    assert [kind for kind, _ in events] == ["write"]
    answer = events[0][1]
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and answer.endswith(b"\r\n\r\nhello")


def test_a_connection_closed_after_its_response_is_sent_all_of_it_first():
    events = run_async(exchange_in_process(head_then_body, get("/", b"Connection: close")))
    assert [kind for kind, _ in events] == ["write", "close"]
    assert events[0][1].endswith(b"\r\n\r\nhello")


def test_a_streamed_response_is_written_turn_by_turn_and_nothing_is_held_back():
    """Parts written in different turns are not held for one another: each turn's writes leave
    at its end, in order."""
    def streamed(sock: Socket):
        async def app(scope, receive, send) -> None:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"first", "more_body": True})
            await asyncio.sleep(0.01)  # other turns pass
            await send({"type": "http.response.body", "body": b"second", "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        return app

    events = run_async(exchange_in_process(streamed, get("/")))
    writes = [data for kind, data in events if kind == "write"]
    assert len(writes) == 2
    assert writes[0].endswith(b"\r\n\r\n5\r\nfirst\r\n")  # the head with the first part
    assert writes[1] == b"6\r\nsecond\r\n0\r\n\r\n"


# STUCK, once the app imports app.pages.models (importing it at start-up would hold up the
# spawned workers past uvicorn's health check), and a thread that is joined at exit and never
# ends, as a ThreadPoolExecutor's thread stuck in model code is (the model thread is a daemon).
STUCK_ON_IMPORT = """
import importlib.util
import multiprocessing
import sys
import threading


class Stuck:
    def find_spec(self, name, path, target=None):
        if name != "app.pages.models":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            module.top_names = spin
            if multiprocessing.parent_process() is not None:  # a worker
                threading.Thread(target=spin, daemon=False).start()

        spec.loader.exec_module = exec_module
        return spec


def spin(*args, **kwargs):
    while True:
        pass


sys.meta_path.insert(0, Stuck())
"""


@pytest.mark.slow
def test_sigterm_stops_every_worker_within_its_grace_while_their_model_threads_are_stuck(
        one_model, tmp_path):
    """`--workers 2`: each worker's model thread stuck (patched in every process, the spawned
    workers too, through sitecustomize), SIGTERM to the supervisor stops it all in time."""
    (tmp_path / "sitecustomize.py").write_text(STUCK_ON_IMPORT)
    root = Path(__file__).resolve().parents[1]
    env = {"OMP_NUM_THREADS": "1", "NAMELAB_SHUTDOWN_GRACE_SECONDS": "2",
           "NAMELAB_WORKERS": "2", "PYTHONPATH": f"{tmp_path}:{root}"}
    with live_process(one_model, cli=True, env=env) as (base, proc):
        stuck = [threading.Thread(target=lambda: cut_short(base + "/models/bigram"), daemon=True)
                 for _ in range(4)]  # the kernel spreads them over the workers
        for t in stuck:
            t.start()
        time.sleep(1)
        workers = children(proc.pid)
        assert len(workers) >= 2
        start = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=BOUND)
        assert time.monotonic() - start < 2 + 1 + 5
        assert not [pid for pid in workers if alive(pid)]


def cut_short(url: str) -> None:
    """A request on a stuck model thread: the shutdown closes its connection unanswered, which
    is what these tests expect of it (not an error of the thread that sent it)."""
    try:
        httpx.get(url, timeout=BOUND)
    except httpx.TransportError:
        pass


def children(pid: int) -> list[int]:
    """The worker processes of uvicorn's supervisor (not multiprocessing's resource tracker)."""
    pids = [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return [p for p in pids if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()]


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"
