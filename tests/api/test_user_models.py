"""Users' models (issue 24, item 5): their folder beside the shipped models, served with them
and marked as users'; DELETE /api/models/{model} for theirs only; the cap on how many."""

from __future__ import annotations

import logging
import shutil

import pytest

from app.store.registry import Registry, TooManyUserModels
from tests.reload_helpers import app_of, folder_of, put, refused, served, wait_served


@pytest.fixture
def folder(tmp_path, models_dir):
    """Shipped: the session's bigram and MLP (no users' folder made yet)."""
    return folder_of(tmp_path, models_dir)


def test_the_users_folder_is_made_and_its_models_are_served_marked_as_users(folder, models_dir):
    users = folder / "users"
    with app_of(folder) as client:
        assert users.is_dir()
        put(models_dir / "neural-bigram.safetensors", users / "mine.safetensors")
        cards = wait_served(client, lambda c: "mine" in c, "the user's model is not served")
        assert cards["mine"]["user"] is True
        assert cards["bigram"]["user"] is False and cards["mlp"]["user"] is False
        assert client.get("/api/models/mine").json()["user"] is True
        overview = client.get("/").text
        assert overview.count("user model</span>") == 1
        assert "user model</span>" in client.get("/models/mine").text
        assert "user model</span>" not in client.get("/models/mlp").text
        assert client.get("/api/models/mine/score?name=emma").status_code == 200


def test_a_name_of_a_shipped_model_is_refused_in_the_users_folder(folder, models_dir):
    users = folder / "users"
    users.mkdir()
    shutil.copyfile(models_dir / "neural-bigram.safetensors", users / "bigram.safetensors")
    with app_of(folder) as client:
        card = served(client)["bigram"]
        assert card["type"] == "bigram" and card["user"] is False
        assert "shipped" in refused(client)["users/bigram.safetensors"]


def test_a_shipped_model_removed_lets_the_users_model_of_its_name_be_served(folder,
                                                                           models_dir):
    users = folder / "users"
    users.mkdir()
    shutil.copyfile(models_dir / "neural-bigram.safetensors", users / "bigram.safetensors")
    with app_of(folder) as client:
        (folder / "bigram.safetensors").unlink()
        cards = wait_served(client, lambda c: c.get("bigram", {}).get("user"),
                            "the user's bigram is not served")
        assert cards["bigram"]["type"] == "neural-bigram"
        assert "users/bigram.safetensors" not in refused(client)


def test_deleting_a_users_model_removes_its_file_and_it_is_gone_when_answered(folder,
                                                                              models_dir):
    users = folder / "users"
    users.mkdir()
    shutil.copyfile(models_dir / "bigram.safetensors", users / "mine.safetensors")
    with app_of(folder, reload_seconds=0) as client:  # no scan: the DELETE's own pass drops it
        assert served(client)["mine"]["user"] is True
        answer = client.delete("/api/models/mine")
        assert answer.status_code == 204, answer.text
        assert not (users / "mine.safetensors").exists()
        assert "mine" not in served(client)
        assert client.get("/api/models/mine").status_code == 404
        assert client.delete("/api/models/mine").status_code == 404


def test_a_shipped_model_cannot_be_deleted(folder):
    with app_of(folder) as client:
        answer = client.delete("/api/models/mlp")
        assert answer.status_code == 403
        assert "shipped" in answer.json()["detail"]
        assert (folder / "mlp.safetensors").exists() and "mlp" in served(client)


def test_deleting_an_unknown_model_is_404_naming_the_available(folder):
    with app_of(folder) as client:
        answer = client.delete("/api/models/nope")
        assert answer.status_code == 404
        assert "nope" in answer.json()["detail"] and "bigram" in answer.json()["detail"]


def test_users_models_are_off_when_their_folder_cannot_be_made(folder, tmp_path, caplog):
    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("x")
    caplog.set_level(logging.WARNING, logger="namelab")
    with app_of(folder, user_models_dir=not_a_folder / "users") as client:
        assert set(served(client)) == {"bigram", "mlp"}
    assert any("users' models are off" in r.getMessage() for r in caplog.records)


def test_the_cap_names_the_users_models_to_delete(folder, models_dir):
    users = folder / "users"
    users.mkdir()
    for name in ("one", "two"):
        shutil.copyfile(models_dir / "bigram.safetensors", users / f"{name}.safetensors")
    registry = Registry.load_dir(folder, users_dir=users)
    assert registry.user_models() == ["one", "two"]
    registry.check_room(3)  # room for one more
    with pytest.raises(TooManyUserModels) as refused_:
        registry.check_room(2)
    assert refused_.value.names == ["one", "two"]
    assert "NAMELAB_MAX_USER_MODELS" in str(refused_.value) and "one, two" in str(refused_.value)
