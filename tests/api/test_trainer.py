"""Who may train, cancel and delete models (issue 24, item 6; app/web/deps.py,
require_trainer), checked through DELETE /api/models/{model}, the first route that needs it."""

from __future__ import annotations

import shutil

import httpx
import pytest

from app.web.deps import is_loopback
from tests.live import live_process
from tests.reload_helpers import app_of, folder_of

TOKEN = "s3cret-token-of-the-test"


@pytest.fixture
def folder(tmp_path, models_dir):
    """Shipped: bigram; the users' folder with a user's model, `mine`."""
    out = folder_of(tmp_path, models_dir, names=("bigram",))
    (out / "users").mkdir()
    shutil.copyfile(models_dir / "bigram.safetensors", out / "users" / "mine.safetensors")
    return out


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.1.1", "localhost", "::1", "[::1]"])
def test_loopback_addresses(host):
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "10.0.0.1", "example.org",
                                  "localhost.example.org", ""])
def test_other_addresses(host):
    assert not is_loopback(host)


def test_on_a_loopback_address_deleting_needs_no_token(folder):
    with app_of(folder, host="127.0.0.1") as client:
        assert client.delete("/api/models/mine").status_code == 204


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10"])
def test_on_any_other_address_without_a_token_deleting_is_off(folder, host):
    with app_of(folder, host=host) as client:
        answer = client.delete("/api/models/mine")
        assert answer.status_code == 403
        assert "NAMELAB_TRAIN_TOKEN" in answer.json()["detail"]
        assert "Traceback" not in answer.text
        assert (folder / "users" / "mine.safetensors").exists()
        # with the header, still off: no token is configured to compare it with
        assert client.delete("/api/models/mine", headers={
            "Authorization": f"Bearer {TOKEN}"}).status_code == 403


@pytest.mark.parametrize("host", ["0.0.0.0", "127.0.0.1"])
@pytest.mark.parametrize("header", [None, "Bearer", "Bearer wrong", f"Basic {TOKEN}",
                                    f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}"])
def test_with_a_token_every_request_carries_it(folder, host, header):
    with app_of(folder, host=host, train_token=TOKEN) as client:
        answer = client.delete("/api/models/mine",
                               headers={"Authorization": header} if header else {})
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"].startswith("Bearer")
        assert "NAMELAB_TRAIN_TOKEN" in answer.json()["detail"]
        assert (folder / "users" / "mine.safetensors").exists()


@pytest.mark.parametrize("host", ["0.0.0.0", "127.0.0.1"])
def test_the_right_token_deletes(folder, host):
    with app_of(folder, host=host, train_token=TOKEN) as client:
        answer = client.delete("/api/models/mine", headers={"Authorization": f"bearer {TOKEN}"})
        assert answer.status_code == 204
        assert not (folder / "users" / "mine.safetensors").exists()


def test_a_blank_token_is_no_token(folder, monkeypatch):
    monkeypatch.setenv("NAMELAB_TRAIN_TOKEN", "  ")
    with app_of(folder, host="0.0.0.0") as client:
        assert client.app.state.settings.train_token is None
        assert client.delete("/api/models/mine").status_code == 403


def test_the_token_is_refused_before_the_model_is_looked_up(folder):
    with app_of(folder, host="0.0.0.0", train_token=TOKEN) as client:
        assert client.delete("/api/models/nope").status_code == 401  # names no model


def test_deleting_is_rate_limited_as_every_route(folder):
    with app_of(folder, rate_limit_per_minute=2) as client:
        assert client.delete("/api/models/bigram").status_code == 403
        assert client.delete("/api/models/bigram").status_code == 403
        assert client.delete("/api/models/mine").status_code == 429
        assert (folder / "users" / "mine.safetensors").exists()


# `namelab serve` as given, plus these flags (they win: the last of a flag counts)
MORE_FLAGS = ("import app.cli as cli\nserve = cli.main\n"
              "cli.main = lambda argv: serve([*argv, '--host', '0.0.0.0', '--workers', '2'])")


@pytest.mark.slow
def test_namelab_serve_tells_its_workers_the_address_it_serves_on(folder):
    """`--host 0.0.0.0 --workers 2`: the worker processes read their settings from the
    environment, so without NAMELAB_HOST passed on they would think they serve on loopback."""
    with live_process(folder, cli=True, wrap=MORE_FLAGS) as (base, _):
        answer = httpx.delete(f"{base}/api/models/mine")
        assert answer.status_code == 403 and "NAMELAB_TRAIN_TOKEN" in answer.json()["detail"]
        assert (folder / "users" / "mine.safetensors").exists()
