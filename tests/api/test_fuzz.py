"""Fuzzing the whole API, in-process, from the app's own OpenAPI document (schemathesis).

Every operation gets requests that fit the schema (positive) and requests that do not
(negative), with the hardening middleware in the loop. Whatever comes in: no 5xx, every response
has a status code, content type and body that the document declares, and the security headers.
Bounded (a few examples per operation and mode) and derandomized, so CI replays the same cases.
On the shared tiny models and on the odd ones (a bigram with zero probabilities, whose log 0
becomes null, and an MLP with 2-D embeddings).

Not checked: that every request fitting the schema is accepted. What the schema cannot say is
checked per model (a name's alphabet, top_k <= the vocabulary size, a prefix no longer than
max_len) and answered 422; tests/api cover those.

Bodies with NaN and Infinity anywhere (Python's JSON parser reads them; no schema generates
them) are built by hypothesis at the end: never a 5xx, and the answer is strict JSON.
"""

from __future__ import annotations

import json

import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.config import Settings
from app.domain.params import SampleParams
from app.main import create_app

EXAMPLES = 12  # per operation and mode


def security_headers(ctx, response, case) -> None:
    headers = {k.lower(): v[0] for k, v in response.headers.items()}
    csp = headers.get("content-security-policy", "")
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp, headers
    assert headers.get("x-content-type-options") == "nosniff", headers
    assert "referrer-policy" in headers, headers
    assert "traceback" not in response.text.lower()


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, security_headers]


def can_be_wrong(op) -> bool:
    """Has a query or a body: a path parameter is any string, so it has no negative cases."""
    return bool(len(op.query) or len(op.body))


@pytest.fixture(scope="module", params=["models_dir", "odd_models_dir"])
def operations(request):
    app = create_app(Settings(models_dir=request.getfixturevalue(request.param)))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    return [result.ok() for result in schema.get_all_operations()]


def test_the_document_covers_the_api(operations):
    assert {op.label for op in operations} == {
        "GET /healthz", "GET /readyz", "GET /api/models", "GET /api/models/{model}",
        "DELETE /api/models/{model}",
        "POST /api/models/{model}/sample", "GET /api/models/{model}/sample",
        "POST /api/models/{model}/score", "GET /api/models/{model}/score", "GET /api/compare",
        "GET /api/history",
        "GET /api/models/{model}/era",
        "GET /api/models/{model}/top", "GET /api/models/{model}/bigram",
        "GET /api/models/{model}/embeddings", "GET /api/models/{model}/next",
        "GET /api/models/{model}/attention"}


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
                         ids=["positive", "negative"])
def test_no_5xx_and_every_response_as_declared(operations, mode):
    for op in operations:
        if mode == GenerationMode.NEGATIVE and not can_be_wrong(op):
            continue
        @given(case=op.as_strategy(generation_mode=mode))
        @hsettings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
                   suppress_health_check=list(HealthCheck))
        def check(case):
            response = case.call()
            case.validate_response(response, checks=CHECKS)

        check()


def test_rate_limited_answers_are_declared_too(settings):
    """With rate limiting on, 429s come back, and the document declares them."""
    app = create_app(settings.model_copy(update={"rate_limit_per_minute": 5}))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    op = schema["/api/compare"]["GET"]
    statuses = []

    @given(case=op.as_strategy())
    @hsettings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
               suppress_health_check=list(HealthCheck))
    def check(case):
        response = case.call()
        statuses.append(response.status_code)
        case.validate_response(response, checks=CHECKS)

    check()
    assert 429 in statuses


# Python's JSON parser (the one FastAPI uses) also reads NaN, Infinity, -Infinity and 1e309, which
# no JSON schema can generate: bodies with such numbers anywhere, built here.
ANY = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(),
              st.sampled_from([float("nan"), float("inf"), -float("inf")]),
              st.text(max_size=10)),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=8)
SAMPLE_FIELDS = [*SampleParams.model_fields, "other"]


@pytest.mark.parametrize(("path", "body"), [
    ("/api/models/bigram/sample",
     st.dictionaries(st.sampled_from(SAMPLE_FIELDS), ANY, max_size=4)),
    ("/api/models/mlp/score", st.one_of(
        st.fixed_dictionaries({"names": st.lists(st.one_of(st.just("emma"), ANY), max_size=4)}),
        ANY)),
])
def test_non_finite_numbers_anywhere_in_a_body_are_never_5xx(client, path, body):
    @given(body=body)
    @hsettings(max_examples=60, derandomize=True, deadline=None, database=None,
               suppress_health_check=list(HealthCheck))
    def check(body):
        raw = json.dumps(body, allow_nan=True)  # NaN, Infinity: what Python's parser reads
        r = client.post(path, content=raw, headers={"content-type": "application/json"})
        assert r.status_code in (200, 400, 422), (raw, r.status_code, r.text[:300])
        json.loads(r.text, parse_constant=pytest.fail)  # the answer is strict JSON

    check()
