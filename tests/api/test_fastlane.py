"""The fast lane (app/api/fastlane.py) against FastAPI's own handling of the same routes: two apps
on the same models, one without the lane, asked the same requests, give the same answers (status,
content type, body) whichever lane took them; a plain request never reaches FastAPI's router and
any other one does; an error raised while answering is the app's handler's answer."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from app.api import fastlane
from app.api.fastlane import FastLane
from app.config import Settings
from app.main import create_app
from app.serving import batching
from app.serving.worker import QueueFull
from tests.live import run_async

JSON = {"content-type": "application/json"}


class Routed:
    """Innermost middleware: the paths that reached FastAPI's router."""

    paths: list[str] = []

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            Routed.paths.append(scope["path"])
        await self.app(scope, receive, send)


def app_with(models_dir, lane: bool):
    """create_app's app, with the lane or without it, and Routed inside both."""
    app = create_app(Settings(models_dir=models_dir, request_flops=2_000_000))
    stack = app.user_middleware
    if not lane:
        stack[:] = [m for m in stack if m.cls is not FastLane]
    stack.append(type(stack[0])(Routed))  # user_middleware runs outside in: last is innermost
    return app


@pytest.fixture(scope="module")
def lanes(models_dir):
    with TestClient(app_with(models_dir, True)) as fast, \
            TestClient(app_with(models_dir, False)) as slow:
        yield fast, slow


def ask(client, path: str, body: bytes, headers=JSON):
    Routed.paths.clear()
    r = client.post(path, content=body, headers=headers)
    return (r.status_code, r.headers.get("content-type"), r.headers.get("retry-after"),
            r.content), list(Routed.paths)


def same(lanes, path: str, body: bytes | str, headers=JSON) -> tuple[int, bool]:
    """Both lanes' answers, checked equal; (status, whether the fast app routed it)."""
    fast, slow = lanes
    body = body.encode() if isinstance(body, str) else body
    (got, routed), (want, _) = ask(fast, path, body, headers), ask(slow, path, body, headers)
    assert got == want, (path, body, headers)
    return got[0], bool(routed)


PLAIN = [
    ("/api/models/mlp/score", {"names": ["emma"]}),
    ("/api/models/mlp/score", {"names": ["emma", "José", "xqzvk", "a", "Mary-Jane"]}),
    ("/api/models/bigram/score", {"names": ["olivia", "emma"]}),
    ("/api/models/transformer/score", {"names": ["zoe"]}),
    ("/api/models/mlp/score", {"names": ["x1y"]}),  # no name can be scored: the route's 422
    ("/api/models/mlp/score", {"names": ["emma"] * 400}),  # over the cost budget: its 422
    ("/api/models/mlp/sample", {"n": 20, "seed": 1}),
    ("/api/models/wavenet/sample", {"n": 5, "seed": 7, "prefix": "an", "temperature": 0.7}),
    ("/api/models/transformer/sample", {"n": 3, "seed": 2, "unique": True, "top_k": 3}),
    ("/api/models/bigram/sample", {"n": 4, "seed": 3, "suffix": "a"}),
    ("/api/models/mlp/sample", {"n": 2, "seed": 4, "top_k": 500}),  # over the vocabulary: 422
]


@pytest.mark.parametrize("path, body", PLAIN, ids=[f"{p.split('/')[3]}-{i}"
                                                    for i, (p, _) in enumerate(PLAIN)])
def test_a_plain_request_takes_the_lane_and_gets_fastapis_answer(lanes, path, body):
    status, routed = same(lanes, path, json.dumps(body))
    assert not routed  # answered before FastAPI's router
    assert status in (200, 422)


OTHERS = [  # (path, body, headers, FastAPI's status)
    ("/api/models/nope/score", '{"names": ["emma"]}', JSON, 404),  # an unknown model
    ("/api/models/mlp/score", '{"names": "emma"}', JSON, 422),  # not a list
    ("/api/models/mlp/score", '{"names": ["emma"], "x": 1}', JSON, 422),  # an extra field
    ("/api/models/mlp/score", '{"names": ["emma"]', JSON, 400),  # not JSON
    ("/api/models/mlp/score", b'{"names": ["\xff"]}', JSON, 400),  # not UTF-8
    ("/api/models/mlp/score", "[" * 100_000 + "]" * 100_000, JSON, 400),  # nested too deep
    ("/api/models/mlp/score", '{"names": ["emma"]}', {"content-type": "text/plain"}, 422),
    ("/api/models/mlp/score", '{"names": ["emma"]}', {}, 422),  # no content type
    ("/api/models/mlp/score", '{"names": ["emma"]}',  # FastAPI reads +json as JSON
     {"content-type": "application/vnd.api+json"}, 200),
    ("/api/models/mlp/score", "", JSON, 422),  # no body
    ("/api/models/mlp/sample", '{"n": "ten", "seed": 1}', JSON, 422),  # strict
    ("/api/models/mlp/sample", '{"n": 2, "seed": true}', JSON, 422),
    ("/api/models/mlp/sample", '{"n": 2, "seed": 1, "temperature": NaN}', JSON, 422),
]


@pytest.mark.parametrize("path, body, headers, status", OTHERS, ids=range(len(OTHERS)))
def test_any_other_request_goes_on_to_fastapi(lanes, path, body, headers, status):
    assert same(lanes, path, body, headers) == (status, True)


@pytest.mark.parametrize("body", ["", "null"])
def test_a_sample_without_a_body_goes_on_to_fastapi_and_gets_the_defaults(lanes, body):
    fast, _ = lanes
    (status, _, _, answer), routed = ask(fast, "/api/models/mlp/sample", body.encode())
    assert status == 200 and routed and len(json.loads(answer)["names"]) == 10


def test_a_charset_parameter_still_takes_the_lane(lanes):
    status, routed = same(lanes, "/api/models/mlp/score", '{"names": ["emma"]}',
                          {"content-type": "Application/JSON; charset=utf-8"})
    assert status == 200 and not routed


def test_an_error_raised_while_answering_is_the_apps_handlers(lanes, monkeypatch):
    """QueueFull (the model thread's queue is full) is answered by the app's handler: 503 with
    Retry-After, as FastAPI's route gives it."""
    async def full(*args, **kwargs):
        raise QueueFull("the model queue is full (test)")

    monkeypatch.setattr(batching, "score_valid", full)
    status, routed = same(lanes, "/api/models/mlp/score", '{"names": ["emma"]}')
    assert status == 503 and not routed


def test_a_bug_while_answering_is_a_500_in_both_lanes(lanes, monkeypatch):
    async def bug(*args, **kwargs):
        raise KeyError("a bug")

    monkeypatch.setattr(batching, "sample", bug)
    status, routed = same(lanes, "/api/models/mlp/sample", '{"n": 1, "seed": 1}')
    assert status == 500 and not routed


def test_a_body_cut_short_by_a_disconnect_is_replayed_to_fastapi():
    """The lane reads the body; a disconnect before its end goes on, after the body read."""
    messages = [{"type": "http.request", "body": b'{"na', "more_body": True},
                {"type": "http.disconnect"}]

    async def receive():
        return messages.pop(0)

    async def run():
        body, last = await fastlane.read_body(receive)
        assert (body, last) == (b'{"na', {"type": "http.disconnect"})
        again = fastlane.replay(body, receive, last)
        return [await again(), await again()]

    assert run_async(run()) == [{"type": "http.request", "body": b'{"na', "more_body": True},
                                  {"type": "http.disconnect"}]


# Bodies of any shape, close to the real ones: both lanes answer them alike.
names = st.lists(st.one_of(st.sampled_from(["emma", "zoe", "José", "x", ""]), st.text(max_size=8)),
                 max_size=4)
score_bodies = st.one_of(
    st.fixed_dictionaries({"names": names}),
    st.dictionaries(st.sampled_from(["names", "name", "n"]),
                    st.one_of(names, st.integers(), st.none(), st.text(max_size=5)), max_size=2),
    st.one_of(st.none(), st.integers(), st.text(max_size=5), names))
sample_bodies = st.fixed_dictionaries(
    {"seed": st.integers(0, 2**31)},
    optional={"n": st.one_of(st.integers(-2, 30), st.floats(allow_nan=False), st.text(max_size=3)),
              "temperature": st.one_of(st.floats(0, 3, allow_nan=False), st.integers(-1, 3)),
              "top_k": st.one_of(st.none(), st.integers(-1, 40)),
              "prefix": st.one_of(st.sampled_from(["", "an", "zz", "é"]), st.text(max_size=3)),
              "unique": st.booleans(), "max_len": st.integers(0, 40),
              "extra": st.just(1)})


@hsettings(max_examples=60, deadline=None, derandomize=True,
           suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(model=st.sampled_from(["mlp", "bigram", "transformer"]),
       body=st.one_of(score_bodies.map(lambda b: ("score", b)),
                      sample_bodies.map(lambda b: ("sample", b))))
def test_both_lanes_answer_any_body_alike(lanes, model, body):
    op, payload = body
    same(lanes, f"/api/models/{model}/{op}", json.dumps(payload))
