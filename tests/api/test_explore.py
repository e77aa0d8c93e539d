"""GET /api/models/{model}/next and /attention, and the card's hidden layers (app/api/explore.py,
app/domain/explorer.py): the numbers against the score route's, every bad input a 4xx naming it."""

from __future__ import annotations

import math

import pytest
import torch

from app.lm import KINDS
from app.lm.inspect import window
from app.lm.sampling import Knobs, filtered
from tests.api.api_helpers import ALPHABET, assert_422, ok
from tests.conftest import forget_pages

MODELS = list(KINDS)


@pytest.mark.parametrize("model", MODELS)
def test_next_gives_every_symbol_sorted_with_the_score_routes_numbers(client, model):
    r = client.get(f"/api/models/{model}/next", params={"prefix": " EmM "})
    body = ok(r)
    assert body["prefix"] == "emm" and body["model"] == model
    symbols = body["symbols"]
    assert sorted(s["char"] for s in symbols) == sorted("." + ALPHABET)
    assert [s["prob"] for s in symbols] == sorted((s["prob"] for s in symbols), reverse=True)
    assert math.isclose(sum(s["prob"] for s in symbols), 1.0, abs_tol=1e-9)
    assert next(s for s in symbols if s["char"] == ".")["label"] == "end"
    assert all(s["kept"] for s in symbols)  # no knobs: nothing cut (the prefix is not empty)
    # the prefix's steps and the next 'a' are the steps of 'emma' on the score route
    steps = client.get(f"/api/models/{model}/score", params={"name": "emma"}).json()[
        "results"][0]["steps"]
    assert body["steps"] == steps[:3]
    assert math.isclose(body["log_prob"], sum(s["log_prob"] for s in steps[:3]), abs_tol=1e-9)
    assert math.isclose(body["nll_per_letter"], -body["log_prob"] / 3)
    a = next(s for s in symbols if s["char"] == "a")
    assert abs(a["log_prob"] - steps[3]["log_prob"]) < 1e-6
    assert body["greedy"].startswith("emm")


def test_next_applies_the_knobs_as_sampling_does(client):
    body = client.get("/api/models/mlp/next", params={"top_k": 3, "temperature": 0.5}).json()
    kept = [s for s in body["symbols"] if s["kept"]]
    # the three most probable letters: an empty prefix cannot end, so the end is cut first
    assert kept == [s for s in body["symbols"] if s["char"] != "."][:3]
    assert math.isclose(sum(s["sampling_prob"] for s in kept), 1.0, abs_tol=1e-5)
    assert all(s["sampling_prob"] == 0 for s in body["symbols"] if not s["kept"])
    # sharper than the model: the best symbol gets more at temperature 0.5
    assert kept[0]["sampling_prob"] > kept[0]["prob"]
    assert body["prefix"] == "" and body["steps"] == [] and body["nll_per_letter"] is None


@pytest.mark.parametrize(("params", "field", "words"), [
    ({"prefix": "em1"}, "prefix", ["alphabet"]),
    ({"prefix": "a" * 65}, "prefix", ["64"]),
    ({"top_k": 28}, "top_k", ["27"]),
    ({"top_k": 0}, "top_k", []),
    ({"temperature": 0}, "temperature", []),
    ({"temperature": "nan"}, "temperature", []),
    ({"temperature": 6}, "temperature", []),
    ({"seed": 1}, "seed", []),
])
def test_next_refuses_bad_input_naming_it(client, params, field, words):
    assert_422(client.get("/api/models/mlp/next", params=params), field, *words)


def test_unknown_models_are_404s(client):
    for path in ("next", "attention?name=emma"):
        r = client.get(f"/api/models/nope/{path}")
        assert r.status_code == 404 and "available models" in r.json()["detail"]


def test_attention_has_a_row_per_position_summing_to_one(client):
    r = client.get("/api/models/transformer/attention", params={"name": "Émma"})
    body = ok(r)
    assert body["name"] == "emma" and body["positions"] == [".", "e", "m", "m", "a"]
    cfg = client.app.state.registry.get("transformer").model.cfg
    assert len(body["weights"]) == cfg.n_layer and len(body["weights"][0]) == cfg.n_head
    for layer, mean in zip(body["weights"], body["mean"], strict=True):
        for head in layer:
            for t, row in enumerate(head):
                assert math.isclose(sum(row), 1.0, abs_tol=1e-6)
                assert all(w == 0 for w in row[t + 1:])
        assert math.isclose(mean[4][0], sum(h[4][0] for h in layer) / cfg.n_head,
                            abs_tol=1e-9)


@pytest.mark.parametrize("model", [m for m in MODELS if not KINDS[m].has_attention])
def test_a_kind_without_attention_is_a_404_naming_the_kinds_that_have_it(client, model):
    r = client.get(f"/api/models/{model}/attention", params={"name": "emma"})
    assert r.status_code == 404
    assert "no attention" in r.json()["detail"] and "transformer" in r.json()["detail"]


def test_attention_refuses_names_it_cannot_read(client):
    block = client.app.state.registry.get("transformer").model.block_size
    assert client.get("/api/models/transformer/attention",
                      params={"name": "a" * (block - 1)}).status_code == 200
    assert_422(client.get("/api/models/transformer/attention", params={"name": "a" * block}),
               "name", f"at most {block - 1} letters")
    assert_422(client.get("/api/models/transformer/attention", params={"name": "x1"}),
               "name", "alphabet")
    assert_422(client.get("/api/models/transformer/attention"), "name")
    assert_422(client.get("/api/models/transformer/attention", params={"name": ""}), "name")


@pytest.mark.parametrize("model", MODELS)
def test_the_card_carries_the_hidden_layers_health(client, loaded, model):
    card = client.get(f"/api/models/{model}").json()
    h = card["hidden_layers"]
    layers = loaded(model).model.activation_layers()
    if not layers:
        assert h is None
        return
    # the tiny data is a file the test session still has: its validation names are known
    assert h["source"] == "validation" and h["n_names"] > 0
    assert [x["label"] for x in h["layers"]] == [label for label, _, _ in layers]
    for x in h["layers"]:
        assert sum(x["histogram"]) == x["rows"] * x["units"]
        assert (x["saturated"] is None) == (x["activation"] != "tanh")
        assert all(0 <= u < x["units"] for u in x["dead"])
    assert client.get(f"/api/models/{model}").json() == card  # computed once, the same


def test_next_and_attention_answers_are_cached_pages(client):
    forget_pages(client.app)
    url = "/api/models/transformer/attention?name=ava"
    first = client.get(url)
    again = client.get(url, headers={"if-none-match": first.headers["etag"]})
    assert again.status_code == 304
    first = client.get("/api/models/mlp/next?prefix=av")
    assert client.get("/api/models/mlp/next?prefix=av",
                      headers={"if-none-match": first.headers["etag"]}).status_code == 304


@pytest.mark.parametrize("model", ["bigram", "mlp", "wavenet"])
def test_top_p_and_min_p_keep_what_the_samplers_filter_keeps(client, loaded, model):
    knobs = Knobs(0.7, None, 0.61, 0.137)
    body = client.get(f"/api/models/{model}/next", params={
        "prefix": "el", "temperature": 0.7, "top_p": 0.61, "min_p": 0.137}).json()
    assert (body["top_p"], body["min_p"]) == (0.61, 0.137)
    m = loaded(model).model
    with torch.no_grad():
        logits = m(window(m, "el"))[0].float()
    want = (filtered(logits, knobs)[0] > -math.inf).tolist()
    got = {s["char"]: s["kept"] for s in body["symbols"]}
    assert [got[c] for c in m.vocab.itos] == want and 0 < sum(want) < len(want)
    assert math.isclose(sum(s["sampling_prob"] for s in body["symbols"]), 1.0, abs_tol=1e-9)


def test_next_applies_the_constraints_exactly_for_the_bigrams_and_says_so(client):
    q = {"prefix": "em", "suffix": "ly", "max_len": 6}
    exact = client.get("/api/models/bigram/next", params=q).json()
    approx = client.get("/api/models/mlp/next", params=q).json()
    assert exact["exact"] is True and 0 < exact["constraint_mass"] < 1
    assert approx["exact"] is False and approx["constraint_mass"] is None
    for body in (exact, approx):
        assert (body["suffix"], body["max_len"]) == ("ly", 6)
        end = next(s for s in body["symbols"] if s["char"] == ".")
        assert end["kept"] and not end["fits"] and end["sampling_prob"] == 0  # 'em' does not
        assert math.isclose(sum(s["sampling_prob"] for s in body["symbols"]), 1.0,
                            abs_tol=1e-9)
        assert body["greedy"].endswith("ly") and len(body["greedy"]) <= 6


@pytest.mark.parametrize(("params", "field", "words"), [
    ({"suffix": "l1"}, "suffix", ["alphabet"]),
    ({"contains": "é!"}, "contains", ["alphabet"]),
    ({"pattern": "(("}, "pattern", []),
    ({"min_len": 5, "max_len": 4}, "min_len", ["at most"]),
    ({"prefix": "emmanuelle", "max_len": 6}, "max_len", ["prefix"]),
    ({"prefix": "em", "suffix": "q", "pattern": "e.*a"}, "pattern", ["no name"]),
    ({"max_len": 0}, "max_len", []),
])
def test_next_refuses_constraints_it_cannot_apply_naming_them(client, params, field, words):
    assert_422(client.get("/api/models/mlp/next", params=params), field, *words)
