"""A training run killed with a real signal never damages the checkpoint it was replacing.

Each test starts `python -m app.cli train` over an existing checkpoint, waits for a marker the
child prints (no sleeps: the kill happens when the child says it has reached the point under
test), sends the signal, and checks that the old checkpoint is byte-for-byte intact and loads,
and that nothing the run left behind is taken for a checkpoint.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.store.checkpoints import load_checkpoint
from app.store.registry import Registry

ROOT = Path(__file__).resolve().parents[1]
DEADLINE = 120  # seconds to wait for a marker; a bound, not a timing assumption

TINY_MLP = ["--block-size", "3", "--n-embd", "4", "--n-hidden", "32", "--n-layers", "1",
            "--dropout", "0", "--batch-size", "32", "--warmup", "10"]

# Runs the real CLI; os.replace (the atomic rename that publishes a checkpoint) first announces
# itself and blocks, so the parent can kill the child with the new file written but not renamed.
BLOCK_AT_RENAME = """
import os, sys, time
real_replace = os.replace
def announced_replace(src, dst):
    print(f"RENAMING {src}", flush=True)
    time.sleep(600)
    real_replace(src, dst)
os.replace = announced_replace
from app.cli import main
sys.exit(main(sys.argv[1:]))
"""


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def out(models_dir, tmp_path) -> Path:
    """A models folder holding one good checkpoint, mlp.safetensors, to be overwritten."""
    folder = tmp_path / "models"
    folder.mkdir()
    shutil.copy(models_dir / "mlp.safetensors", folder / "mlp.safetensors")
    return folder


def start(args: list[str], code: str | None = None) -> subprocess.Popen:
    cmd = [sys.executable, "-c", code, *args] if code else [sys.executable, "-m", "app.cli", *args]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"})


def wait_for(proc: subprocess.Popen, stream, marker: bytes) -> bytes:
    """Read the child's output until `marker` appears (tqdm writes '\\r', not lines)."""
    seen = b""
    deadline = time.monotonic() + DEADLINE
    while marker not in seen:
        chunk = os.read(stream.fileno(), 4096)
        if not chunk:
            pytest.fail(f"child exited before {marker!r}; rc={proc.wait()}; output {seen[-500:]!r}")
        seen += chunk
        if time.monotonic() > deadline:
            pytest.fail(f"no {marker!r} within {DEADLINE}s")
    return seen


def kill(proc: subprocess.Popen, sig: signal.Signals) -> int:
    proc.send_signal(sig)
    try:
        return proc.wait(timeout=DEADLINE)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
        proc.stderr.close()


def assert_intact(folder: Path, digest: str) -> None:
    path = folder / "mlp.safetensors"
    assert sha256(path) == digest
    load_checkpoint(path)  # loads
    registry = Registry.load_dir(folder)
    assert registry.names() == ["mlp"]
    assert registry.refused == {}
    visible = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
    assert visible == ["mlp.safetensors"]


def train_args(out: Path, data: Path, steps: int) -> list[str]:
    return ["train", "--model", "mlp", "--data", str(data), "--out", str(out), "--name", "mlp",
            "--force", "--steps", str(steps), "--eval-interval", str(steps), *TINY_MLP]


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["KILL", "TERM"])
def test_killed_while_training_leaves_the_old_checkpoint(out, tiny_names_file, sig):
    digest = sha256(out / "mlp.safetensors")
    proc = start(train_args(out, tiny_names_file, steps=10**7))
    wait_for(proc, proc.stderr, b"train mlp")  # the progress bar: training has started
    rc = kill(proc, sig)
    assert rc == (-signal.SIGKILL if sig == signal.SIGKILL else 130)  # SIGTERM: "interrupted"
    assert_intact(out, digest)
    assert not list(out.glob(".*.tmp"))


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["KILL", "TERM"])
def test_killed_while_publishing_leaves_the_old_checkpoint(out, tiny_names_file, sig):
    digest = sha256(out / "mlp.safetensors")
    proc = start([*train_args(out, tiny_names_file, steps=20), "--quiet"], code=BLOCK_AT_RENAME)
    said = wait_for(proc, proc.stdout, b"RENAMING")
    tmp = Path(said.split(b"RENAMING ", 1)[1].split(b"\n", 1)[0].decode())
    assert tmp.parent == out and tmp.name.startswith(".mlp.safetensors.")
    assert tmp.stat().st_size > 0  # the new checkpoint is fully written, only not yet renamed
    rc = kill(proc, sig)
    assert_intact(out, digest)  # had the file been written in place, this would fail
    if sig == signal.SIGKILL:
        assert rc == -signal.SIGKILL
        assert tmp.exists()  # nothing can clean up after SIGKILL; it is hidden and never loaded
    else:
        assert rc == 130
        assert not tmp.exists()  # SIGTERM unwinds: save_checkpoint removes its temp file
