"""Start-up time and memory of the real server, with as many models as the project ships.

    python bench/bench_startup.py [--copies 3] [--runs 3] [--models-dir models]

The checkpoints of `--models-dir` are copied `--copies` times under other names into a temporary
folder (3 x the three shipped models = 9 models, as many as the project will ship), then
`namelab serve` (OMP_NUM_THREADS=1, as in the Docker image) is started `--runs` times on it.
Each run prints the seconds from launch until `/readyz` first answers 200 (polled every 10 ms),
the CPU time the server used until then (on a busy machine the wall time mostly measures the
wait for a core; the CPU time much less so) and its resident memory (RSS) then. As a yardstick
for how busy the machine is, each run also times a bare `python -c "import torch"`.

Targets (issue #15): ready in under 2.5 s, under 450 MB RSS, with about nine models; (issue 28)
ready in at most 2.2x a bare `import torch` measured in the same run. The server's log, with
each model's load time, is printed after the runs (the last run's lines of `namelab.registry`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from load import free_port, stop_server, tree_cpu_seconds, tree_rss_mib  # bench/load.py

ROOT = Path(__file__).resolve().parents[1]


def many_models(source: Path, copies: int, folder: Path) -> list[str]:
    names = []
    for path in sorted(source.glob("*.safetensors")):
        for i in range(copies):
            name = path.stem if i == 0 else f"{path.stem}-{i + 1}"
            shutil.copy(path, folder / f"{name}.safetensors")
            names.append(name)
    return names


def time_ready(models_dir: Path, log: Path, timeout: float = 600) -> tuple[float, float, float]:
    """(seconds from launch to the first 200 of /readyz, CPU seconds the server used until
    then, its RSS in MB (10**6 bytes) then); the server's output goes to `log`."""
    port = free_port()
    cmd = [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
           "--models-dir", str(models_dir)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log.open("wb"),
                            stderr=subprocess.STDOUT)
    try:
        with httpx.Client(timeout=1) as client:
            while time.perf_counter() - t0 < timeout:
                if proc.poll() is not None:
                    sys.exit(f"server exited with status {proc.returncode}")
                try:
                    if client.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                        return (time.perf_counter() - t0, tree_cpu_seconds(proc.pid),
                                tree_rss_mib(proc.pid) * 2**20 / 1e6)
                except httpx.TransportError:
                    pass
                time.sleep(0.01)
        sys.exit(f"server not ready within {timeout:.0f} s")
    finally:
        stop_server(proc)


def time_torch_import() -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch"], check=True)
    return time.perf_counter() - t0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models-dir", type=Path, default=ROOT / "models")
    p.add_argument("--copies", type=int, default=3)
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="namelab-startup-") as tmp:
        names = many_models(args.models_dir, args.copies, Path(tmp))
        print(f"{len(names)} models: {', '.join(names)}; load average "
              f"{os.getloadavg()[0]:.1f} ({os.cpu_count()} cores)")
        readies, cpus, rsss, ratios = [], [], [], []
        log = Path(tmp) / "server.log"  # not a checkpoint: the registry skips it
        for i in range(args.runs):
            torch_s = time_torch_import()
            ready, cpu, rss = time_ready(Path(tmp), log)
            readies.append(ready)
            cpus.append(cpu)
            rsss.append(rss)
            ratios.append(ready / torch_s)
            print(f"run {i + 1}: ready in {ready:.2f} s ({cpu:.2f} s of CPU), RSS {rss:.0f} MB; "
                  f"a bare `import torch` {torch_s:.2f} s (ready / import torch = "
                  f"{ready / torch_s:.2f})")
        print("".join(line for line in log.read_text().splitlines(keepends=True)
                      if "loaded model" in line), end="")
    ready, rss = statistics.median(readies), statistics.median(rsss)
    print(f"median: ready in {ready:.2f} s (target < 2.5) using {statistics.median(cpus):.2f} s "
          f"of CPU, RSS {rss:.0f} MB (target < 450), ready / import torch "
          f"{statistics.median(ratios):.2f} (target <= 2.2); load average "
          f"{os.getloadavg()[0]:.1f}")
    return 0 if ready < 2.5 and rss < 450 else 1


if __name__ == "__main__":
    sys.exit(main())
