"""The soak for the pages: every page's query parameters filled by hypothesis, no 5xx.

The API has schemathesis (tests/api/test_fuzz.py), which reads the
OpenAPI document; the pages are not in it (they read raw strings from the query and say in the
page what is wrong), so their parameters are listed here, and a new page fails
`test_every_page_is_fuzzed` until it is. Whatever the values: no 5xx, an HTML page (or the
download asked for), an error shown in the page (role="alert") for a 4xx, no traceback.
Bounded (EXAMPLES per page and parameter) and derandomized, so CI replays the same cases.
"""

from __future__ import annotations

import shutil
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from app.config import Settings
from app.domain.params import FORM_STEP
from app.lm.bigram import BigramConfig
from app.main import create_app
from app.pages import ROUTERS
from app.pages.sample import FORM as SAMPLE_FORM
from app.store.training import train_to_checkpoint

EXAMPLES = 40  # per page and parameter

MODELS = ["bigram", "bigram0", "mlp", "neural-bigram"]  # bigram0: no smoothing, zeros happen
LETTERS = "abcdefghijklmnopqrstuvwxyz"
# Values that broke something once, or sit on a bound, next to arbitrary text.
ODD = ["", " ", "0", "-1", "1", "2", "3", "10", "26", "27", "28", "200", "201", "1e309", "nan",
       "inf", "-inf", "1e-30", "0.0000001", "99999999999999999999", "4294967296", "true",
       "off", "ⅷ" * 9, "ﬃ" * 22, "ﬃ" * 64, "é", "<script>alert(1)</script>", "名前", "\x00",
       "%", "a,b", ".", "probs", "counts", "logprobs", "q", "zzzz", "emma",
       *("a" * k for k in (31, 32, 33, 63, 64, 65, 100))]
WILD = st.one_of(st.sampled_from(MODELS + ODD),
                 st.integers(0, 80).flatmap(lambda k: st.text(LETTERS, min_size=k, max_size=k)),
                 st.integers(-10, 300).map(str),
                 st.floats().map(repr),  # nan, inf, 1e-300 and the like
                 st.text(st.characters(exclude_categories=["Cs"]), max_size=70))


def ints(lo: int, hi: int) -> st.SearchStrategy:
    return st.integers(lo, hi).map(str)


def accepted(f) -> st.SearchStrategy:
    """Values a form's input (app.domain.params.FormField) takes: within its bounds (a number
    without an upper one: within the tiny vocabulary), text of a few letters (cheap constraints)."""
    if f.type == "checkbox":
        return FLAG
    if f.type == "text":
        return st.text(LETTERS, max_size=3)
    lo, hi = f.attrs.get("min", 0), f.attrs.get("max", 27)
    if f.attrs.get("inputmode") == "numeric":
        return ints(lo, hi)
    return st.floats(lo or FORM_STEP, hi).map(repr)


MODEL = st.sampled_from(MODELS)
DIM = ints(0, 4)
NAMES = st.lists(st.text(LETTERS + "éÉ ", min_size=1, max_size=70), max_size=25).map(" ".join)
FLAG = st.sampled_from(["1", "on", "", "0"])
# path -> each query parameter the page reads, with a strategy for values it accepts. Each
# parameter in turn gets arbitrary values (WILD), the others accepted ones, so that the deep
# paths (a long prefix with every other field right) are reached too.
PAGES: dict[str, dict[str, st.SearchStrategy]] = {
    "/": {},
    "/bigram": {"model": MODEL, "view": st.sampled_from(["probs", "counts", "logprobs"]),
                "row": st.sampled_from(list("." + LETTERS))},
    "/bigram/table.csv": {"model": MODEL},
    "/bigram/table.json": {"model": MODEL},
    "/bigram/compare": {"a": MODEL, "b": MODEL},
    "/embeddings": {"model": MODEL, "x": DIM, "y": DIM,
                    "letter": st.sampled_from(list("." + LETTERS))},
    "/sample": {"model": MODEL, **{f.name: accepted(f) for f in SAMPLE_FORM},
                "n": ints(1, 200)},  # SampleParams' fields (at most 200 names: cheap cases)
    "/score": {"names": NAMES},
    "/models/{model}": {"name": st.text(LETTERS, min_size=1, max_size=8)},
    "/next": {"model": MODEL, "prefix": st.text(LETTERS, max_size=8),
              "temperature": st.floats(0.001, 5).map(repr), "top_k": ints(1, 27)},
    "/train": {},
    "/train/{job_id}": {},
    "/train/{job_id}/live": {},
}
POSTS = {"/train/{job_id}/cancel"}  # a form's POST only (tests/pages/test_train.py)
JOB = st.one_of(st.text("0123456789abcdef", min_size=1, max_size=16), WILD)
DOWNLOADS = {"/bigram/table.csv": "text/csv", "/bigram/table.json": "application/json"}


@pytest.fixture(scope="module")
def fuzz_client(models_dir, tiny_names_file, tmp_path_factory):
    """The shared tiny models and a bigram without smoothing (log 0 = -inf in its tables)."""
    folder = tmp_path_factory.mktemp("fuzz-models")
    for path in models_dir.glob("*.safetensors"):
        shutil.copy(path, folder)
    train_to_checkpoint("bigram", str(tiny_names_file), folder, "bigram0",
                        config=BigramConfig(smoothing=0.0))
    with TestClient(create_app(Settings(models_dir=folder))) as client:
        yield client


def test_every_page_is_fuzzed():
    routes = {route.path for module in ROUTERS for route in module.router.routes}
    assert routes == set(PAGES) | POSTS


@st.composite
def query(draw, params: dict[str, st.SearchStrategy], focus: str | None) -> dict:
    """The page's parameters: `focus` wild (or repeated), now and then a second one too, the
    others accepted or absent, and now and then a stray parameter."""
    wild = {focus} if focus else set()
    if params and draw(st.booleans()):
        wild.add(draw(st.sampled_from(sorted(params))))
    out = {}
    for key, accepted in params.items():
        value = draw(st.one_of(WILD, st.lists(WILD, min_size=2, max_size=3)) if key in wild
                     else st.one_of(st.none(), accepted))
        if value is not None:
            out[key] = value
    if draw(st.booleans()):
        out["zz"] = draw(WILD)
    return out


CASES = [(path, focus) for path, params in PAGES.items() for focus in [*params] or [None]]


@pytest.mark.parametrize(("path", "focus"), CASES, ids=[f"{p} {f or ''}" for p, f in CASES])
def test_no_page_answers_any_query_with_a_5xx(fuzz_client, path, focus):
    url = st.just(path)
    for key, values in (("{model}", st.one_of(MODEL, WILD)), ("{job_id}", JOB)):
        if key in path:
            url = values.map(lambda v, k=key: path.replace(k, quote(v, safe="")))

    @given(url=url, params=query(PAGES[path], focus))
    @hsettings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
               suppress_health_check=list(HealthCheck))
    def check(url, params):
        r = fuzz_client.get(url, params=params)
        assert r.status_code < 500, (url, params, r.text[:500])
        kind = r.headers["content-type"]
        if r.status_code == 200 and path in DOWNLOADS:
            assert kind.startswith(DOWNLOADS[path])
        else:
            assert kind.startswith("text/html"), (url, params, kind)
        if r.status_code >= 400 and r.status_code != 404:
            assert 'role="alert"' in r.text, (url, params)
        assert "Traceback" not in r.text

    check()


@pytest.mark.parametrize("raw", [b"model=%FF%FE", b"names=%ED%A0%80", b"n=%00", b"&&&=&",
                                 b"prefix=" + b"%E2%85%B7" * 9, b"names=" + b"a," * 1500])
@pytest.mark.parametrize("path", ["/sample", "/score", "/bigram", "/embeddings"])
def test_raw_query_strings_that_are_not_utf8_are_not_5xx(fuzz_client, path, raw):
    r = fuzz_client.get(f"{path}?{raw.decode('latin-1')}")
    assert r.status_code < 500 and r.headers["content-type"].startswith("text/html")
