"""Assertions shared by the API tests (`from tests.api.api_helpers import ...`); their fixtures
are in conftest.py."""

from __future__ import annotations

from typing import Any

ALPHABET = "abcdefghijklmnopqrstuvwxyz"


def assert_422(r, field: str, *words: str) -> dict:
    """A 422 whose error for `field` (last element of `loc`) mentions every one of `words`."""
    assert r.status_code == 422, r.text
    errors = r.json()["detail"]
    assert isinstance(errors, list) and errors, r.text
    mine = [e for e in errors if field in [str(x) for x in e["loc"]]]
    assert mine, f"no error for field {field!r}: {r.text}"
    msg = " ".join(e["msg"] for e in mine)
    for w in words:
        assert w in msg, f"{w!r} not in {msg!r}"
    return mine[0]


def ok(r) -> Any:
    """The JSON body of a 200 (else the test fails showing the body)."""
    assert r.status_code == 200, r.text
    return r.json()
