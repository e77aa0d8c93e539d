"""The server gives back what its model loads freed: at start-up and after a hot reload
(app/serving/memory.py)."""

from __future__ import annotations

import platform

from app.serving import memory
from tests.reload_helpers import app_of, folder_of, put, wait_served


def test_trim_runs_where_there_is_glibc():
    assert memory.trim() is (platform.libc_ver()[0] == "glibc")


def test_start_up_and_each_reload_that_loads_something_trim(tmp_path, models_dir, monkeypatch):
    calls: list[str] = []
    monkeypatch.setattr(memory, "trim", lambda: calls.append("trim") or True)
    folder = folder_of(tmp_path, models_dir, names=("bigram",))
    with app_of(folder) as client:
        assert calls == ["trim"]  # after the start-up load
        n = len(calls)
        put(models_dir / "mlp.safetensors", folder / "mlp.safetensors")
        wait_served(client, lambda cards: "mlp" in cards, "mlp is not served")
        for _ in range(400):  # the trim follows the load within the same pass
            if len(calls) > n:
                break
            client.get("/healthz")
        assert len(calls) > n
