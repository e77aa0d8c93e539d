"""The connection layer under the issue 22 floods (app/serving/connections.py), against the real
server (`namelab serve`, default limits, one worker) with the shipped models, on a free loopback
port.

    python bench/bench_connections.py            # about a minute

Prints figures, has no targets: the server's resident memory and open descriptors before and
after four 250 MB heads and a burst of 2,000 heads of 64 KB; and under 5,000 silent connections
(more than NAMELAB_MAX_CONNECTIONS, 2,048): the descriptors it holds, what a new /healthz gets,
and how long until /healthz is 200 again (the silent ones time out: NAMELAB_HEAD_TIMEOUT_SECONDS).
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from load import ROOT, free_port, start_server, stop_server, tree_rss_mib, wait_ready

sys.path.insert(0, str(ROOT))
from tests.test_connections import burst, send_for_ever  # noqa: E402


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def report(what: str, pid: int) -> None:
    print(f"{what:<44} rss {tree_rss_mib(pid):7.1f} MiB  fds {fds(pid):5d}")


def main() -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        proc = start_server(ROOT / "models", port, 1, Path(tmp) / "server.log")
        try:
            wait_ready(proc, base, 180)
            report("ready", proc.pid)
            threads = [threading.Thread(target=send_for_ever, args=(base, 250 * 2**20))
                       for _ in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            report("after four 250 MB heads (431)", proc.pid)
            codes = burst(base, 2000, 64 * 2**10 - 200)
            report(f"after 2,000 heads of 64 KB ({codes.count(200)} x 200)", proc.pid)
            time.sleep(6)
            report("6 s later", proc.pid)

            silent = []
            for _ in range(5000):
                silent.append(socket.create_connection(("127.0.0.1", port)))
            time.sleep(1)
            r = httpx.get(base + "/healthz", timeout=30)
            print(f"5,000 silent connections open: server fds {fds(proc.pid)}, /healthz "
                  f"{r.status_code} (Retry-After {r.headers.get('retry-after')})")
            t0 = time.monotonic()
            while httpx.get(base + "/healthz", timeout=30).status_code != 200:
                time.sleep(0.2)
            print(f"/healthz 200 again after {time.monotonic() - t0:.1f} s "
                  f"(server fds {fds(proc.pid)})")
            for s in silent:
                s.close()
            time.sleep(1)
            report("silent connections closed", proc.pid)
        finally:
            stop_server(proc)


if __name__ == "__main__":
    main()
