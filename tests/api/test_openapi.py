"""The OpenAPI document (/docs) is exact: summaries, examples, limits, every status code."""

import re

import pytest


@pytest.fixture(scope="module")
def doc(client):
    return client.get("/openapi.json").json()


def op(doc, method, path):
    return doc["paths"][path][method]


def query(doc, method, path):
    return {p["name"]: p["schema"] for p in op(doc, method, path)["parameters"]
            if p["in"] == "query"}


def schema(doc, name):
    return doc["components"]["schemas"][name]


ENDPOINTS = [
    ("get", "/healthz", {"200"}),
    ("get", "/readyz", {"200", "503"}),
    ("get", "/api/models", {"200"}),
    ("get", "/api/models/{model}", {"200", "404", "422"}),
    ("delete", "/api/models/{model}", {"204", "401", "403", "404", "409", "422"}),
    ("post", "/api/models/{model}/sample", {"200", "400", "404", "413", "422"}),
    ("get", "/api/models/{model}/sample", {"200", "404", "422"}),
    ("post", "/api/models/{model}/score", {"200", "400", "404", "413", "422"}),
    ("get", "/api/models/{model}/score", {"200", "404", "422"}),
    ("get", "/api/models/{model}/era", {"200", "404", "422"}),
    ("get", "/api/compare", {"200", "422"}),
    ("get", "/api/history", {"200", "404", "422"}),
    ("get", "/api/models/{model}/top", {"200", "404", "422"}),
    ("get", "/api/models/{model}/bigram", {"200", "404", "409", "422"}),
    ("get", "/api/models/{model}/embeddings", {"200", "404", "409", "422"}),
    ("get", "/api/models/{model}/next", {"200", "404", "422"}),
    ("get", "/api/models/{model}/attention", {"200", "404", "422"}),
    ("post", "/api/train", {"202", "400", "401", "403", "409", "413", "422", "429", "503"}),
    ("get", "/api/train/{job_id}", {"200", "404", "422"}),
    ("get", "/api/train/{job_id}/events", {"200", "404", "422"}),
    ("delete", "/api/train/{job_id}", {"200", "401", "403", "404", "422"}),
]


@pytest.mark.parametrize(("method", "path", "codes"), ENDPOINTS)
def test_every_endpoint_is_documented_with_its_status_codes(doc, method, path, codes):
    o = op(doc, method, path)
    assert o["summary"] and o["description"] and o["tags"]
    assert set(o["responses"]) == codes


def test_operation_ids_are_the_route_names(doc):
    """A generated client reads sample_names.sync(...) (openapi-python-client names its
    modules after the operation IDs)."""
    ids = {(m, p): o["operationId"] for p, ops in doc["paths"].items() for m, o in ops.items()}
    assert ids == {
        ("get", "/healthz"): "healthz",
        ("get", "/readyz"): "readyz",
        ("get", "/api/models"): "list_models",
        ("get", "/api/models/{model}"): "get_model",
        ("delete", "/api/models/{model}"): "delete_model",
        ("post", "/api/models/{model}/sample"): "sample_names",
        ("get", "/api/models/{model}/sample"): "sample_names_get",
        ("post", "/api/models/{model}/score"): "score_names",
        ("get", "/api/models/{model}/score"): "score_name",
        ("get", "/api/models/{model}/era"): "get_era",
        ("get", "/api/compare"): "compare_name",
        ("get", "/api/history"): "name_history",
        ("get", "/api/models/{model}/top"): "top_names",
        ("get", "/api/models/{model}/bigram"): "get_bigram_table",
        ("get", "/api/models/{model}/embeddings"): "get_embeddings",
        ("get", "/api/models/{model}/next"): "next_letter",
        ("get", "/api/models/{model}/attention"): "get_attention",
        ("post", "/api/train"): "train_model",
        ("get", "/api/train/{job_id}"): "get_training_job",
        ("get", "/api/train/{job_id}/events"): "stream_training_job",
        ("delete", "/api/train/{job_id}"): "cancel_training_job",
    }


def test_no_other_endpoints(doc):
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops if p.startswith("/")}
    assert {(m, p) for m, p, _ in ENDPOINTS} <= documented
    assert {p for _, p in documented if p.startswith("/api")} == {
        p for _, p, _ in ENDPOINTS if p.startswith("/api")}


def test_errors_share_one_schema(doc):
    ref = {"$ref": "#/components/schemas/ErrorMessage"}
    assert op(doc, "get", "/api/models/{model}")["responses"]["404"]["content"][
        "application/json"]["schema"] == ref
    assert op(doc, "get", "/api/models/{model}/bigram")["responses"]["409"]["content"][
        "application/json"]["schema"] == ref


def test_sample_limits_are_in_the_schema(doc):
    body = schema(doc, "SampleRequest")
    props = body["properties"]
    assert body["additionalProperties"] is False
    assert (props["n"]["minimum"], props["n"]["maximum"], props["n"]["default"]) == (1, 1000, 10)
    assert props["temperature"]["exclusiveMinimum"] == 0 and props["temperature"]["maximum"] == 5
    assert props["seed"]["anyOf"][0]["minimum"] == 0
    assert props["seed"]["anyOf"][0]["maximum"] == 2**32 - 1
    assert props["top_k"]["anyOf"][0]["minimum"] == 1 and "vocabulary" in props["top_k"][
        "description"]
    assert (props["max_len"]["minimum"], props["max_len"]["maximum"]) == (1, 64)
    assert props["prefix"]["maxLength"] == 64
    assert body["examples"]
    params = query(doc, "get", "/api/models/{model}/sample")
    assert set(params) == set(props)
    assert params["n"]["maximum"] == 1000 and params["max_len"]["maximum"] == 64


def test_score_limits_are_in_the_schema(doc):
    names = schema(doc, "ScoreRequest")["properties"]["names"]
    assert (names["minItems"], names["maxItems"]) == (1, 1000)
    assert (names["items"]["minLength"], names["items"]["maxLength"]) == (1, 64)
    assert query(doc, "get", "/api/models/{model}/score")["name"]["maxLength"] == 64
    top = query(doc, "get", "/api/models/{model}/top")
    assert (top["k"]["minimum"], top["k"]["maximum"], top["k"]["default"]) == (1, 100, 20)


def test_request_bodies_have_examples(doc):
    for path in ("/api/models/{model}/sample", "/api/models/{model}/score"):
        content = op(doc, "post", path)["requestBody"]["content"]["application/json"]
        assert content["examples"]


def test_nullable_fields_say_why(doc):
    counts = schema(doc, "BigramTable")["properties"]["counts"]
    assert {"type": "null"} in counts["anyOf"] and "neural bigram" in counts["description"]
    lp = schema(doc, "NameScoreOut")["properties"]["log_prob"]
    assert {"type": "null"} in lp["anyOf"] and "-inf" in lp["description"]


def test_docs_pages_load_their_scripts_from_the_app(client):
    """No CDN: /docs and /redoc work offline, and their CSP needs no other host."""
    for path in ("/docs", "/redoc"):
        r = client.get(path)
        assert r.status_code == 200
        assets = re.findall(r'(?:src|href)="([^"]+)"', r.text)
        assert assets and all(a.startswith("/") for a in assets), assets
        for a in assets:
            got = client.get(a)
            assert got.status_code == 200 and len(got.content) > 100, a


@pytest.mark.parametrize("path", ["/api/models/bigram/sample", "/api/models/bigram/score"])
@pytest.mark.parametrize("body", ["{", "[", '{"n": ', "\x00", "nul"])
def test_a_body_that_is_not_json_gets_the_declared_400(client, doc, path, body):
    r = client.post(path, content=body, headers={"content-type": "application/json"})
    declared = op(doc, "post", path.replace("bigram", "{model}"))["responses"]
    assert r.status_code == 400 and str(r.status_code) in declared
    assert isinstance(r.json()["detail"], str)  # the declared shape: one sentence
