"""Property-based: requests generated from the OpenAPI document (schemathesis) never get a 500,
and every response matches the status codes and schemas that the document declares.

One check is left out: a request that fits the schema may still be a 422, because what the
schema cannot say is checked per model (the alphabet of names and prefixes, top_k <= the
vocabulary size, a prefix no longer than max_len).
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
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
