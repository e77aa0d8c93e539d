"""Fuzzing the whole API, in-process, from the app's own OpenAPI document (schemathesis).

Every operation gets requests that fit the schema (positive) and requests that do not
(negative), with the hardening middleware in the loop. Whatever comes in: no 5xx, every response
has a status code, content type and body that the document declares, and the security headers.
Bounded (a few examples per operation and mode) and derandomized, so CI replays the same cases.

Not checked: that every request fitting the schema is accepted. What the schema cannot say is
checked per model (a name's alphabet, top_k <= the vocabulary size, a prefix no longer than
max_len) and answered 422; tests/api cover those.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

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


def has_inputs(op) -> bool:
    return any(len(getattr(op, where)) for where in ("path_parameters", "query", "body"))


@pytest.fixture(scope="module")
def operations(settings):
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(settings))
    return [result.ok() for result in schema.get_all_operations()]


def test_the_document_covers_the_api(operations):
    paths = {op.path for op in operations}
    assert {"/healthz", "/api/models"} <= paths


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
                         ids=["positive", "negative"])
def test_no_5xx_and_every_response_as_declared(operations, mode):
    for op in operations:
        if mode == GenerationMode.NEGATIVE and not has_inputs(op):
            continue  # nothing to get wrong
        @given(case=op.as_strategy(generation_mode=mode))
        @hsettings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
                   suppress_health_check=list(HealthCheck))
        def check(case):
            response = case.call()
            case.validate_response(response, checks=CHECKS)

        check()
