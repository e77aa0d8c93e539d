from app.lm import KINDS
from tests.api.api_helpers import assert_422, ok


def test_compare_scores_the_name_under_every_model(client):
    r = client.get("/api/compare", params={"name": "Zoë"})
    body = ok(r)
    assert body["name"] == "Zoë" and body["normalized"] == "zoe"
    assert [x["model"] for x in body["results"]] == sorted(KINDS)
    assert [x["type"] for x in body["results"]] == sorted(KINDS)
    for x in body["results"]:
        alone = client.get(f"/api/models/{x['model']}/score", params={"name": "Zoë"}).json()
        assert {k: v for k, v in x.items() if k not in ("model", "type")} == alone["results"][0]


def test_compare_rejects_bad_names(client):
    assert_422(client.get("/api/compare", params={"name": "r2d2"}), "name", "'2'")
    assert_422(client.get("/api/compare"), "name", "Field required")
    assert_422(client.get("/api/compare", params={"name": "a", "model": "x"}), "model", "Extra")
