"""POST /api/train, GET /api/train/{id} and its events, DELETE (issue 24, items 2, 4, 5, 7):
a job is queued (202), followed to done, and its model served by every route; every refusal is
a 4xx naming the problem.

Each app here has a users' folder of its own (tmp_path): the session's shared models stay as
they are. Waits poll the job's state, bounded by DEADLINE (not a timing assumption)."""

from __future__ import annotations

import json
import time

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app
from tests.conftest import TINY_NAMES

DEADLINE = 120.0
NAMES = TINY_NAMES * 4  # 240 names: a split, and a bigram in well under a second
LONG_MLP = {"steps": 30_000, "warmup": 10}  # runs until cancelled


@pytest.fixture
def trainer(models_dir, tmp_path):
    """A client of an app whose users' folder is tmp_path/users; queue of 1, one job at once."""
    settings = Settings(models_dir=models_dir, user_models_dir=tmp_path / "users",
                        train_queue=1, reload_seconds=0.2)
    with TestClient(create_app(settings)) as c:
        yield c


def wait_until(client, job_id: str, condition) -> dict:
    end = time.monotonic() + DEADLINE
    while True:
        job = client.get(f"/api/train/{job_id}").json()
        if condition(job):
            return job
        assert time.monotonic() < end, f"the job never got there: {job}"
        time.sleep(0.05)


def post(client, **body):
    return client.post("/api/train", json=body)


def test_a_bigram_is_queued_trained_and_served_by_every_route(trainer):
    r = post(trainer, kind="bigram", name="pets", names=NAMES + ["", "R2D2"])
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["state"] in ("queued", "running") and r.headers["location"] == job["url"]
    assert job["url"] == f"/api/train/{job['id']}" and job["data"]["n_dropped"] == 2
    job = wait_until(trainer, job["id"], lambda j: j["state"] == "done")
    assert job["model"] == "pets" and job["links"]["bigram"] == "/bigram?model=pets"
    sample = trainer.post("/api/models/pets/sample", json={"n": 5, "seed": 1})
    assert sample.status_code == 200 and len(sample.json()["names"]) == 5
    assert trainer.get(job["links"]["card"]).status_code == 200


def test_an_mlp_from_a_form_with_a_file_streams_its_progress_as_events(trainer):
    upload = ("\n".join(NAMES)).encode()
    r = trainer.post("/api/train", data={"kind": "mlp", "name": "quick", "steps": "1000",
                                         "eval_interval": "100", "warmup": "10",
                                         "batch_size": "256"},
                     files={"file": ("pets.txt", upload, "text/plain")})
    assert r.status_code == 202, r.text
    assert r.json()["data"]["source"] == "the file pets.txt"
    events = []
    with trainer.stream("GET", r.json()["events"]) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        for line in stream.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line.removeprefix("data: ")))
    assert events[-1]["state"] == "done", events[-1]
    running = {e["step"] for e in events if e["state"] == "running" and e["step"]}
    assert len(running) >= 2, running  # progress, not just the start and the end
    assert events[-1]["history"]["step"] == list(range(100, 1001, 100))
    card = trainer.get("/api/models/quick").json()
    assert card["type"] == "mlp" and card["user"] is True


def test_a_name_taken_is_refused_with_409_naming_it(trainer):
    r = post(trainer, kind="bigram", name="mlp", names=NAMES)  # a shipped model's
    assert r.status_code == 409 and "'mlp' is taken" in r.json()["detail"]


def test_a_full_queue_gets_429_with_retry_after_and_delete_cancels(trainer):
    running = post(trainer, kind="mlp", name="first", names=NAMES, options=LONG_MLP).json()
    wait_until(trainer, running["id"], lambda j: j["state"] == "running")
    queued = post(trainer, kind="bigram", name="second", names=NAMES)
    assert queued.status_code == 202
    full = post(trainer, kind="bigram", name="third", names=NAMES)
    assert full.status_code == 429 and "NAMELAB_TRAIN_QUEUE=1" in full.json()["detail"]
    assert int(full.headers["retry-after"]) >= 1
    for job in (queued.json(), running):
        cancelled = trainer.delete(f"/api/train/{job['id']}")
        assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    users = trainer.app.state.settings.users_dir()
    assert sorted(p.name for p in users.iterdir() if p.name != ".jobs") == []


def test_an_unknown_job_is_404(trainer):
    for method in ("GET", "DELETE"):
        r = trainer.request(method, "/api/train/abc123")
        assert r.status_code == 404 and "no training job 'abc123'" in r.json()["detail"]
    assert trainer.get("/api/train/abc123/events").status_code == 404


BAD_JSON = [
    ({"names": []}, 422, "is empty"),
    ({"names": ["Anna"]}, 422, "1 usable name"),
    ({"names": ["123", "!!", "Anna"]}, 422, "dropped: 2 characters that are not letters"),
    ({"names": ["anna", 3]}, 422, "names[1] is int"),
    ({"kind": "gpt"}, 422, "unknown kind 'gpt'"),
    ({"options": {"stepz": 1}}, 422, "unknown option stepz for mlp"),
    ({"options": {"dropout": 2}}, 422, "mlp: dropout must be < 1, got 2"),
    ({"options": {"steps": 10**6}}, 422, "NAMELAB_TRAIN_MAX_STEPS"),
    ({"name": "../evil"}, 422, "model name '../evil' is not allowed"),
    ({"names": None, "dataset": "ssa:1700"}, 422, "not in the SSA records"),
    ({"names": None, "dataset": "/etc/passwd"}, 422, "not an SSA spec"),
    ({"dataset": "ssa:2017"}, 422, "send the names one way: names or text or file or dataset; "
                                   "got names and dataset"),
    ({"names": None}, 422, "got none"),
    ({"names": ["anna"] * 200_001}, 413, "at most 200,000"),
    ({"colour": "red"}, 422, "colour: Extra inputs are not permitted"),
]


@pytest.mark.parametrize(("change", "status", "says"), BAD_JSON)
def test_bad_input_is_a_4xx_naming_the_problem(trainer, change, status, says):
    body = {"kind": "mlp", "name": "fine", "names": NAMES, **change}
    r = post(trainer, **body)
    assert r.status_code == status and says in r.json()["detail"], r.text


@pytest.mark.parametrize(("data", "says"), [
    ("anna\nbéa\n".encode("latin-1"), "is not UTF-8 text: byte 6 (line 2)"),
    (b"anna\nbob\x00\x01", "is binary"),
])
def test_a_bad_upload_is_refused_naming_the_problem(trainer, data, says):
    r = trainer.post("/api/train", data={"kind": "bigram", "name": "fine"},
                     files={"file": ("list.txt", data)})
    assert r.status_code == 422 and says in r.json()["detail"] and "list.txt" in r.text


def test_the_route_takes_more_than_the_global_body_limit_and_no_more_than_its_own(trainer):
    big = b"anna\n" * 420_000  # 2.1 MB: over the 1 MiB of every other route
    r = trainer.post("/api/train", data={"kind": "bigram", "name": "fine"},
                     files={"file": ("big.txt", big)})
    assert r.status_code == 413 and "has 420,000 names; a job takes at most 200,000" in r.text
    huge = b"anna\n" * 900_000  # 4.5 MB: over the route's own limit, refused unread
    r = trainer.post("/api/train", data={"kind": "bigram", "name": "fine"},
                     files={"file": ("huge.txt", huge)})
    assert r.status_code == 413 and "request body too large" in r.text
    r = post(trainer, kind="x", name="y", names=["a" * 60] * 20_000)  # 1.3 MB of JSON: read
    assert r.status_code == 422 and "unknown kind 'x'" in r.text


def test_training_and_cancelling_are_off_on_a_public_address_without_the_token(models_dir,
                                                                                tmp_path):
    settings = Settings(models_dir=models_dir, user_models_dir=tmp_path / "users",
                        host="0.0.0.0")
    with TestClient(create_app(settings)) as client:
        r = post(client, kind="bigram", name="pets", names=NAMES)
        assert r.status_code == 403 and "NAMELAB_TRAIN_TOKEN" in r.json()["detail"]
        assert client.delete("/api/train/abc123").status_code == 403
        assert client.get("/api/train/abc123").status_code == 404  # reading is open
    token = Settings(**{**settings.model_dump(), "train_token": "s3cret"})
    with TestClient(create_app(token)) as client:
        assert post(client, kind="bigram", name="pets", names=NAMES).status_code == 401
        r = client.post("/api/train", json={"kind": "bigram", "name": "pets", "names": NAMES},
                        headers={"Authorization": "Bearer s3cret"})
        assert r.status_code == 202
        wait_until(client, r.json()["id"], lambda j: j["state"] == "done")


def test_past_the_cap_of_users_models_a_job_is_refused_naming_what_to_delete(models_dir,
                                                                          tmp_path):
    settings = Settings(models_dir=models_dir, user_models_dir=tmp_path / "users",
                        max_user_models=1)
    with TestClient(create_app(settings)) as client:
        first = post(client, kind="bigram", name="first", names=NAMES).json()
        wait_until(client, first["id"], lambda j: j["state"] == "done")
        r = post(client, kind="bigram", name="second", names=NAMES)
        assert r.status_code == 409 and r.json()["user_models"] == ["first"]
