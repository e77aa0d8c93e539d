"""The /train page (issue 24, item 3): the form with the kinds and their costs, every refusal
shown next to its field with what was typed kept, a bigram trained from the form whose job page
links the new model and shows ten of its names, a running job's page that reloads itself (and
a final one that does not), cancel, and the trainer's token asked by the form.

Each app here has a users' folder of its own (tmp_path). Waits poll the job's page, bounded by
DEADLINE (not a timing assumption)."""

from __future__ import annotations

import html
import re
import time

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.domain import trainform
from app.main import create_app
from app.store.jobinput import TRAINABLE
from app.store.jobs import JobState
from tests.conftest import TINY_NAMES

DEADLINE = 120.0
NAMES = "\n".join(TINY_NAMES * 4)  # 240 lines, 60 distinct names: a split
REFRESH = 'http-equiv="refresh"'


def app_with(models_dir, tmp_path, **more) -> TestClient:
    return TestClient(create_app(Settings(models_dir=models_dir, user_models_dir=tmp_path / "users",
                                          reload_seconds=0.2, **more)))


@pytest.fixture
def trainer(models_dir, tmp_path):
    with app_with(models_dir, tmp_path) as c:
        yield c


def submit(client, **fields):
    form = {"text": NAMES, "kind": "bigram", "name": "pets", "dataset": "", "steps": "",
            "eval_interval": "", **fields}
    return client.post("/train", data=form, follow_redirects=False)


def until(client, url: str, condition) -> str:
    end = time.monotonic() + DEADLINE
    while True:
        page = client.get(url).text
        if condition(page):
            return page
        assert time.monotonic() < end, f"the job page never got there:\n{page[-3000:]}"
        time.sleep(0.1)


def field_error(page: str, name: str) -> str:
    found = re.search(rf'id="error-{name}">([^<]*)<', page)
    return html.unescape(found.group(1)) if found else ""


def test_the_form_offers_every_trainable_kind_with_what_it_costs(trainer):
    page = trainer.get("/train")
    assert page.status_code == 200
    offered = re.findall(r'<option value="([a-z-]+)"[^>]*>([a-z-]+): ([^<]+)</option>', page.text)
    assert [k for k, _, _ in offered] == list(TRAINABLE)  # the era model is not one
    costs = {k: cost for k, _, cost in offered}
    assert costs["bigram"] == "instant"
    assert all(cost.startswith(("instant", "about")) for cost in costs.values()), costs
    for spec in trainform.PRESETS:
        assert f'<option value="{spec}"' in page.text
    steps = re.search(r'<input type="number" name="steps"[^>]*>', page.text).group(0)
    assert 'min="1"' in steps and 'max="30000"' in steps  # OptimConfig's ge, the server's cap
    assert 'name="token"' not in page.text  # a loopback server without a token asks none
    assert 'href="/train"' in trainer.get("/").text  # in the navigation


def test_a_kinds_cost_comes_from_this_servers_recent_jobs_once_it_has_some():
    shipped = {"mlp": 700.0}
    choices = {c.name: c for c in trainform.kind_choices({"mlp": 50.0}, shipped)}
    assert choices["mlp"].label == "mlp: about a minute"
    assert choices["mlp"].measured == "this server's recent jobs"
    choices = {c.name: c for c in trainform.kind_choices({}, shipped)}
    assert choices["mlp"].label == "mlp: about 12 minutes"
    assert choices["wavenet"].label == "wavenet: not timed here yet"


@pytest.mark.parametrize(("fields", "where", "says"), [
    ({"text": ""}, "names", "send the names one way"),
    ({"text": "Rex\n"}, "names", "at least 2"),
    ({"kind": "gpt"}, "kind", "gpt"),
    ({"name": "my pets!"}, "name", "model name"),
    ({"kind": "mlp", "steps": "0"}, "steps", "steps must be >= 1"),
    ({"kind": "mlp", "steps": "999999"}, "steps", "NAMELAB_TRAIN_MAX_STEPS"),
    ({"steps": "300"}, "steps", "unknown option steps for bigram"),
])
def test_a_bad_input_shows_the_form_again_with_the_message_beside_its_field(
        trainer, fields, where, says):
    r = submit(trainer, **fields)
    assert r.status_code == 422, r.text[:500]
    assert says in field_error(r.text, where), r.text[-3000:]
    typed = {"text": NAMES, "name": "pets", "kind": "bigram", **fields}
    if typed["text"]:
        assert f">{typed['text']}</textarea>" in r.text  # nothing typed is lost
    assert f'name="name" value="{typed["name"]}"' in r.text.replace("&#34;", '"')
    if typed["kind"] in TRAINABLE:
        assert f'<option value="{typed["kind"]}" selected' in r.text


def test_a_bigram_from_the_form_ends_served_with_its_pages_and_ten_names(trainer):
    r = submit(trainer, name="pets")
    assert r.status_code == 303 and r.headers["location"].startswith("/train/")
    url = r.headers["location"]
    page = until(trainer, url, lambda p: 'id="job-names"' in p)
    assert REFRESH not in page  # final and served: nothing left to follow
    for link in ("/models/pets", "/sample?model=pets", "/score?model=pets",
                 "/bigram?model=pets"):
        assert f'href="{link}"' in page
        assert trainer.get(link).status_code == 200
    names = re.search(r'<ol class="job-names" id="job-names">(.*?)</ol>', page).group(1)
    assert len(re.findall(r"<li>[a-z]+</li>", names)) == 10
    # the yardstick is the bigram of the job's own names and split: for a bigram job, its own
    # validation NLL, as its checkpoint records it
    job = trainer.get(f"/api/train/{url.rsplit('/', 1)[1]}").json()
    assert f"the bigram of the same names: {job['metrics']['val_nll']:.4f}" in page


def test_a_running_job_reloads_itself_until_it_is_cancelled(trainer):
    r = submit(trainer, kind="mlp", name="slow", steps="30000")  # runs until cancelled
    url = r.headers["location"]
    page = trainer.get(url).text
    assert REFRESH in page and 'action="' + url + '/cancel"' in page
    live = trainer.get(url + "/live")
    assert live.status_code == 200 and 'id="job-step"' in live.text and "<html" not in live.text
    cancelled = trainer.post(url + "/cancel", follow_redirects=False)
    assert cancelled.status_code == 303 and cancelled.headers["location"] == url
    page = until(trainer, url, lambda p: "state-cancelled" in p)
    assert REFRESH not in page and "/cancel" not in page


def test_an_unknown_job_is_a_404_page(trainer):
    r = trainer.get("/train/0123abcd")
    assert r.status_code == 404 and "no training job" in r.text


def test_a_server_with_a_token_asks_for_it_in_the_form(models_dir, tmp_path):
    with app_with(models_dir, tmp_path, train_token="s3cret") as c:
        assert 'type="password" name="token"' in c.get("/train").text
        r = submit(c, token="wrong")
        assert r.status_code == 401 and "the token is wrong" in field_error(r.text, "token")
        assert f">{NAMES}</textarea>" in r.text
        assert submit(c, token="s3cret").status_code == 303


def test_an_uploaded_file_is_the_names_and_a_bad_one_is_refused_beside_them(trainer):
    form = {"kind": "bigram", "name": "fromfile", "text": "", "dataset": ""}
    latin1 = trainer.post("/train", data=form, files={"file": ("pets.txt", "Zoé\nRex\n".encode(
        "latin-1"), "text/plain")}, follow_redirects=False)
    assert latin1.status_code == 422 and "UTF-8" in field_error(latin1.text, "names")
    r = trainer.post("/train", data=form, files={"file": ("pets.txt", NAMES.encode(),
                                                          "text/plain")}, follow_redirects=False)
    assert r.status_code == 303
    job = trainer.get("/api/train/" + r.headers["location"].rsplit("/", 1)[1]).json()
    assert job["data"]["n_names"] == len(TINY_NAMES) * 4
    assert job["data"]["source"] == "the file pets.txt"


def test_the_yardstick_is_counted_once_per_job_and_none_when_its_names_are_gone():
    reference, reads = trainform.BigramReference(), []
    job = JobState(id="abc123", kind="mlp", name="x")

    def words():
        reads.append(1)
        return TINY_NAMES

    first = reference(job, words)
    assert first is not None and reference(job, words) == first and len(reads) == 1

    def gone():
        raise FileNotFoundError("abc.txt")

    assert reference(JobState(id="def456", kind="mlp", name="y"), gone) is None
