"""GET /api/history (app/api/history.py): a real name's births per year, against the records
read straight from the parquet file (tests/history_helpers.py)."""

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from tests.api.api_helpers import assert_422, ok
from tests.history_helpers import FIRST, LAST, NAMES, parquet_births, shipped_table


@pytest.fixture(scope="module", autouse=True)
def _table():
    shipped_table()  # skips when the table is not built


@pytest.mark.parametrize("name", NAMES[:4])
def test_the_history_is_the_records(client, name):
    body = ok(client.get("/api/history", params={"name": name.upper()}))
    expected = parquet_births(name)
    assert body["name"] == name.upper() and body["normalized"] == name and body["in_records"]
    assert (body["first_year"], body["last_year"]) == (FIRST, LAST)
    assert {s["sex"]: s["counts"] for s in body["sexes"]} == expected
    assert body["total"] == sum(sum(c) for c in expected.values())
    for s in body["sexes"]:
        counts = expected[s["sex"]]
        peak = FIRST + counts.index(max(counts))
        assert s["peak"] == {"year": peak, "births": max(counts)}
        assert s["sentence"] == f"in {peak} with {max(counts):,} " + \
            {"F": "girls", "M": "boys"}[s["sex"]]
        assert s["total"] == sum(counts)
        years = [FIRST + i for i, n in enumerate(counts) if n]
        assert (s["first_record"], s["last_record"]) == (years[0], years[-1])
    both = [sum(c[i] for c in expected.values()) for i in range(LAST - FIRST + 1)]
    assert body["peak"] == {"year": FIRST + both.index(max(both)), "births": max(both)}
    assert body["sentence"].startswith("peaked in ")


def test_a_name_not_in_the_records_is_no_error(client):
    body = ok(client.get("/api/history", params={"name": "Xqzvk"}))
    assert body == {"name": "Xqzvk", "normalized": "xqzvk", "in_records": False,
                    "first_year": FIRST, "last_year": LAST, "total": 0, "peak": None,
                    "sentence": "never given in the US records 1880-2017", "sexes": []}


def test_an_invalid_name_gets_422_naming_the_problem_as_scoring_does(client):
    error = assert_422(client.get("/api/history", params={"name": "r2d2"}), "name",
                       "outside the alphabet", "'2'")
    assert error["type"] == "invalid_name" and error["loc"] == ["query", "name"]
    scored = client.get("/api/models/bigram/score", params={"name": "r2d2"}).json()
    assert error == scored["detail"][0]
    assert_422(client.get("/api/history", params={"name": "-'"}), "name", "is empty")
    assert_422(client.get("/api/history", params={"name": "a" * 65}), "name", "at most 64")
    assert_422(client.get("/api/history"), "name", "Field required")
    assert_422(client.get("/api/history", params={"name": "ann", "sex": "F"}), "sex", "Extra")


def test_without_the_table_the_api_says_it_is_not_installed(settings, tmp_path):
    missing = settings.model_copy(update={"history_file": tmp_path / "none.safetensors"})
    with TestClient(create_app(missing)) as c:
        r = c.get("/api/history", params={"name": "emma"})
        assert r.status_code == 404
        assert "history table is not installed" in r.json()["detail"]
        assert "namelab history" in r.json()["detail"]
        assert c.get("/api/models/bigram/score", params={"name": "emma"}).status_code == 200
