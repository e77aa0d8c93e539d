"""Hot reload (issue 24, item 1): a running server follows its models folder, through the real
app (its lifespan starts the scan: app/serving/reloading.py), checked through its routes."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys

import httpx
import pytest

from app.domain import services
from app.store.checkpoints import load_checkpoint
from app.store.registry import LoadedModel, Registry
from app.store.training import train_to_checkpoint
from tests.conftest import TINY_NAMES
from tests.live import ROOT, live_process
from tests.reload_helpers import (
    app_of,
    folder_of,
    put,
    refused,
    served,
    wait_served,
    wait_until,
    write,
)

SCORE = "/api/models/bigram/score?name=emma"  # a cacheable URL (app/serving/pagecache.py)


@pytest.fixture(scope="module")
def other_bigram(tmp_path_factory):
    """A bigram trained differently from the session's: on the tiny names' second half."""
    folder = tmp_path_factory.mktemp("other")
    data = folder / "half.txt"
    data.write_text("\n".join(TINY_NAMES[len(TINY_NAMES) // 2:]) + "\n")
    train_to_checkpoint("bigram", str(data), folder, "bigram")
    return folder / "bigram.safetensors"


@pytest.fixture
def folder(tmp_path, models_dir):
    """Shipped: the session's bigram and MLP (no users' folder made yet)."""
    return folder_of(tmp_path, models_dir)


def log_prob(client, url=SCORE) -> float:
    answer = client.get(url)
    assert answer.status_code == 200, answer.text
    return answer.json()["results"][0]["log_prob"]


def test_a_new_checkpoint_is_served_on_every_page_and_route(folder, models_dir, caplog):
    caplog.set_level(logging.INFO, logger="namelab.registry")
    with app_of(folder) as client:
        assert "wavenet" not in served(client)
        overview = client.get("/").text  # kept by nothing, but rendered before the change
        put(models_dir / "wavenet.safetensors", folder / "wavenet.safetensors")
        cards = wait_served(client, lambda c: "wavenet" in c, "wavenet is not served")
        assert cards["wavenet"]["type"] == "wavenet" and cards["wavenet"]["user"] is False
        assert client.get("/api/models/wavenet/score?name=emma").status_code == 200
        assert client.post("/api/models/wavenet/sample", json={"n": 3, "seed": 1}).status_code \
            == 200
        assert "wavenet" in client.get("/readyz").json()["models"]
        assert "wavenet" not in overview and "/models/wavenet" in client.get("/").text
        assert client.get("/models/wavenet").status_code == 200
        assert client.get("/sample?model=wavenet&n=2&seed=1").status_code == 200
    loads = [r.getMessage() for r in caplog.records if "model wavenet" in r.getMessage()]
    assert loads and loads[0].startswith("loaded model wavenet") and " s" in loads[0]


def test_a_replaced_file_is_served_in_place_of_the_old_model_never_from_its_cache(
        folder, other_bigram):
    with app_of(folder) as client:
        before = log_prob(client)
        assert log_prob(client) == before  # now in the page cache
        old_sha = served(client)["bigram"]["dataset"]["sha256"]
        put(other_bigram, folder / "bigram.safetensors")
        wait_served(client, lambda c: c["bigram"]["dataset"]["sha256"] != old_sha,
                    "the replaced bigram is not served")
        after = log_prob(client)
        # the new checkpoint's own answer, computed apart from the server
        expected = services.score(LoadedModel.from_checkpoint(load_checkpoint(other_bigram)),
                                  ["emma"])[0].log_prob
        assert after != before and after == pytest.approx(expected, abs=1e-9)
        assert client.get("/bigram?model=bigram&view=counts").status_code == 200


def test_a_removed_file_drops_its_model(folder):
    with app_of(folder) as client:
        (folder / "mlp.safetensors").unlink()
        wait_served(client, lambda c: "mlp" not in c, "mlp is still served")
        assert client.get("/api/models/mlp").status_code == 404
        assert client.get("/models/mlp").status_code == 404
        assert client.get("/").status_code == 200
        assert client.get("/readyz").json()["models"] == ["bigram"]


def test_a_bad_new_file_is_refused_and_everything_else_serves(folder, caplog):
    with app_of(folder) as client:
        write(folder / "junk.safetensors", b"\x00" * 100)
        why = wait_until(lambda: refused(client).get("junk.safetensors"),
                         "junk.safetensors is not listed as refused")
        assert "\n" not in why and len(why) < 300
        assert set(served(client)) == {"bigram", "mlp"}
        assert log_prob(client) < 0
        # fixed: served, and no longer listed
        shutil.copyfile(folder / "bigram.safetensors", folder / "junk.safetensors")
        wait_served(client, lambda c: "junk" in c, "the fixed junk is not served")
        assert "junk.safetensors" not in refused(client)
    assert any("refused checkpoint 'junk.safetensors'" in r.getMessage() for r in caplog.records)


def test_a_bad_replacement_keeps_the_old_model(folder):
    with app_of(folder) as client:
        before = log_prob(client)
        sha = served(client)["bigram"]["dataset"]["sha256"]
        good = (folder / "bigram.safetensors").read_bytes()
        write(folder / "bigram.safetensors", good[: len(good) // 2])  # truncated
        why = wait_until(lambda: refused(client).get("bigram.safetensors"),
                         "the truncated bigram is not listed as refused")
        assert why
        assert served(client)["bigram"]["dataset"]["sha256"] == sha
        assert log_prob(client) == before
        assert client.get("/api/models/bigram/score?name=anna").status_code == 200


def test_temporary_files_of_atomic_writes_are_ignored(folder, models_dir):
    with app_of(folder) as client:
        write(folder / ".bigram.safetensors.x1y2.tmp", b"half a checkpoint")
        shutil.copyfile(models_dir / "bigram.safetensors", folder / ".wavenet.safetensors.ab.tmp")
        put(models_dir / "neural-bigram.safetensors", folder / "neural-bigram.safetensors")
        # the scan that found neural-bigram listed the .tmp files too (written before it)
        cards = wait_served(client, lambda c: "neural-bigram" in c, "neural-bigram not served")
        assert set(cards) == {"bigram", "mlp", "neural-bigram"}
        assert refused(client) == {}


def test_the_default_model_removed_leaves_the_pages_on_the_order(folder):
    with app_of(folder, default_model="mlp") as client:
        (folder / "mlp.safetensors").unlink()
        wait_served(client, lambda c: "mlp" not in c, "mlp is still served")
        for page in ("/", "/sample?n=2&seed=1", "/score?names=emma", "/bigram",
                     "/embeddings", "/next?prefix=em"):
            answer = client.get(page)
            assert answer.status_code in (200, 409), (page, answer.status_code)
            assert answer.status_code == 200 or page == "/embeddings", page
        assert 'value="bigram"' in client.get("/sample").text


def test_every_file_removed_is_a_503_saying_so_until_one_is_back(folder, models_dir):
    with app_of(folder) as client:
        for name in ("bigram", "mlp"):
            (folder / f"{name}.safetensors").unlink()
        wait_until(lambda: client.get("/readyz").status_code == 503, "models still loaded")
        for url in ("/api/models", "/api/compare?name=emma", "/", "/sample", "/next",
                    "/score?names=emma", "/models/mlp"):
            answer = client.get(url)
            assert answer.status_code == 503, url
            assert "every checkpoint file was removed" in answer.text, url
        put(models_dir / "mlp.safetensors", folder / "mlp.safetensors")
        wait_until(lambda: client.get("/readyz").status_code == 200, "mlp is not back")
        assert client.get("/sample?n=2&seed=1").status_code == 200


def test_reload_off_keeps_the_models_of_start_up(folder, models_dir):
    with app_of(folder, reload_seconds=0) as client:
        assert client.app.state.reloader.task is None
        put(models_dir / "wavenet.safetensors", folder / "wavenet.safetensors")
        assert "wavenet" not in served(client)


def test_a_swap_leaves_what_requests_hold_untouched(folder, other_bigram):
    """A request holding the old model (or iterating the old dict) finishes on it: the entry is
    swapped in a new dict, the old LoadedModel is never changed."""
    registry = Registry.load_dir(folder)
    held, models = registry.get("bigram"), registry.models
    before = services.score(held, ["emma"])[0].log_prob
    put(other_bigram, folder / "bigram.safetensors")
    listing, listed = registry.scan()
    assert registry.changed(listing, listed) == [folder / "bigram.safetensors"]
    registry.update(folder / "bigram.safetensors", listing[folder / "bigram.safetensors"])
    assert registry.get("bigram") is not held and models["bigram"] is held
    assert registry.models is not models and list(models) == ["bigram", "mlp"]
    assert services.score(held, ["emma"])[0].log_prob == before
    assert services.score(registry.get("bigram"), ["emma"])[0].log_prob != before
    assert registry.changed(*registry.scan()) == []  # nothing left to do


def test_namelab_train_into_the_served_folder_is_served_without_a_restart(folder,
                                                                            tiny_names_file):
    """The README's promise, with the real command and the real server (`namelab serve`)."""
    with live_process(folder, cli=True) as (base, _):
        subprocess.run([sys.executable, "-m", "app.cli", "train", "--model", "bigram", "--data",
                        str(tiny_names_file), "--out", str(folder), "--name", "fresh"],
                       cwd=ROOT, check=True, capture_output=True)
        wait_until(lambda: httpx.get(f"{base}/api/models/fresh").status_code == 200,
                   "the model namelab train wrote is not served")
        answer = httpx.post(f"{base}/api/models/fresh/sample", json={"n": 3, "seed": 7})
        assert answer.status_code == 200 and len(answer.json()["names"]) == 3
