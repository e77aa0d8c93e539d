"""Property-based: requests generated from the OpenAPI document (schemathesis) never get a 500,
and every response matches the status codes and schemas that the document declares.

Bodies with NaN and Infinity anywhere (Python's JSON parser reads them; no schema generates
them) are built by hypothesis at the end: never a 5xx, and the answer is strict JSON.

One check is left out: a request that fits the schema may still be a 422, because what the
schema cannot say is checked per model (the alphabet of names and prefixes, top_k <= the
vocabulary size, a prefix no longer than max_len).
"""

from __future__ import annotations

import json

import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from schemathesis.specs.openapi.checks import positive_data_acceptance

from app.config import Settings
from app.main import create_app


@pytest.mark.parametrize("models", ["models_dir", "odd_models_dir"])
def test_api_conforms_to_its_openapi_document(request, models):
    """On the shared tiny models, and on the odd ones (a bigram with zero probabilities, a
    2-D MLP)."""
    app = create_app(Settings(models_dir=request.getfixturevalue(models)))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 12

    for op in operations:
        @given(case=op.as_strategy())
        @hsettings(max_examples=15, deadline=None, database=None,
                   suppress_health_check=list(HealthCheck))
        def check(case):
            case.call_and_validate(excluded_checks=[positive_data_acceptance])

        check()


# Python's JSON parser (the one FastAPI uses) also reads NaN, Infinity, -Infinity and 1e309, which
# no JSON schema can generate: bodies with such numbers anywhere, built here.
ANY = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(),
              st.sampled_from([float("nan"), float("inf"), -float("inf")]),
              st.text(max_size=10)),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=8)
SAMPLE_FIELDS = ["n", "temperature", "top_k", "seed", "prefix", "max_len", "unique",
                 "exclude_training", "other"]


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
