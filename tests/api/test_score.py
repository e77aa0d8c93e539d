import json
import math
import statistics

import pytest
from fastapi.testclient import TestClient

from app.api.schemas import ScoreResponse
from app.config import Settings
from app.data import load_dataset, split_words
from app.lm import KINDS
from app.main import create_app
from tests.api.api_helpers import ALPHABET, assert_422, ok
from tests.conftest import TINY_NAMES
from tests.live import ROOT

URL = "/api/models/{}/score"


def score(client, names, model="mlp"):
    r = client.post(URL.format(model), json={"names": names})
    return ok(r)["results"]


def test_results_in_the_order_given_with_the_normalised_form(client):
    given = ["  EMMA ", "José", "Zoë", "xqzvk", "emma"]
    results = score(client, given)
    assert [x["name"] for x in results] == given
    assert [x["normalized"] for x in results] == ["emma", "jose", "zoe", "xqzvk", "emma"]
    assert results[0]["log_prob"] == results[-1]["log_prob"]


def test_the_response_is_exactly_the_documented_model(client):
    body = client.post(URL.format("mlp"), json={"names": ["emma", "Zoë"]}).json()
    assert ScoreResponse.model_validate(body).model_dump() == body  # no field missing or extra


@pytest.mark.parametrize("model", list(KINDS))
def test_a_score_is_the_sum_of_its_steps(client, loaded, model):
    m = loaded(model)
    for x in score(client, ["emma", "xavier", "q"], model):
        steps = x["steps"]
        assert "".join(s["char"] for s in steps) == x["normalized"] + "."
        assert math.isclose(x["log_prob"], sum(s["log_prob"] for s in steps), rel_tol=1e-12)
        assert all(math.isclose(s["prob"], math.exp(s["log_prob"])) for s in steps)
        assert math.isclose(x["nll_per_char"], -x["log_prob"] / len(steps))
        assert math.isclose(x["perplexity"], math.exp(x["nll_per_char"]))
        padded = "." * m.model.block_size + x["normalized"]
        assert [s["context"] for s in steps] == [
            padded[i : i + m.model.block_size] for i in range(len(steps))
        ]


@pytest.mark.parametrize("model", ["bigram", "mlp"])
def test_a_steps_probabilities_sum_to_one_and_rank_them(client, model):
    """For the step after 'em', score 'em' + every letter (and 'em' itself for the end token):
    those 27 probabilities cover the vocabulary, so they sum to 1, and fix every rank."""
    stem = "em"
    results = score(client, [stem + c for c in ALPHABET] + [stem], model)
    probs = [r["steps"][len(stem)]["prob"] for r in results]
    ranks = [r["steps"][len(stem)]["rank"] for r in results]
    assert math.isclose(sum(probs), 1.0, rel_tol=1e-5)
    assert ranks == [1 + sum(q > p for q in probs) for p in probs]


def test_bigram_score_against_the_counts_by_hand(client, loaded):
    """P(next | prev) = (count + 1) / (row total + 27): 'ava' written out from the counts."""
    m = loaded("bigram")
    words = m.training_set
    pairs = [(a, b) for w in words for a, b in zip("." + w, w + ".", strict=True)]

    def p(a, b):
        row = [q for q in pairs if q[0] == a]
        return (row.count((a, b)) + 1) / (len(row) + 27)

    expected = sum(math.log(p(a, b)) for a, b in [(".", "a"), ("a", "v"), ("v", "a"),
                                                     ("a", ".")])
    assert math.isclose(score(client, ["ava"], "bigram")[0]["log_prob"], expected, rel_tol=1e-6)


def test_plausibility_is_the_percentile_among_held_out_names(client, loaded):
    """The reference is the validation and test names that are not training names, each name's
    NLL per character standardised by its length's centre and scale (the card's held_out): at
    the k-th of those n names (by that standardised NLL) the plausibility is
    100 (n - 1 - k) / (n - 1)."""
    m = loaded("mlp")
    parts = split_words(TINY_NAMES, 42)
    held = sorted(set(parts.val + parts.test) - set(parts.train))
    assert m.meta.held_out.n_names == len(held) >= 3
    h = client.get("/api/models/mlp").json()["held_out"]

    def z(x):
        L = len(x["normalized"]) - 1
        return (x["nll_per_char"] - h["length_centre"][L]) / h["length_scale"][L]

    results = sorted(score(client, held), key=z)
    n = len(held)
    # exact where n - 1 divides 100; elsewhere the 101 stored quantiles cut the corners of the
    # names' quantile function, by under one point
    for k, x in enumerate(results):
        assert x["plausibility"] == pytest.approx(100 * (n - 1 - k) / (n - 1),
                                                  abs=0.05 if 100 % (n - 1) == 0 else 1.0)
    assert score(client, ["xqzvk"])[0]["plausibility"] == 0.0


def test_a_checkpoint_without_held_out_quantiles_is_served_with_the_reason(odd_client):
    for name, why in [("old", "predates held-out quantiles"),
                      ("whole", "without a validation split")]:
        (x,) = odd_client.post(URL.format(name), json={"names": ["emma"]}).json()["results"]
        assert x["plausibility"] is None and x["log_prob"] < 0
        card = odd_client.get(f"/api/models/{name}").json()
        assert card["held_out"] is None and why in card["plausibility_unavailable"]
    card = odd_client.get("/api/models/bigram0").json()
    assert card["plausibility_unavailable"] is None and len(card["held_out"]["quantiles"]) == 101


def test_in_training_set_and_in_data(client, loaded):
    """Two facts (issue 21): in the model's data at all, and in its training split."""
    parts = split_words(TINY_NAMES, 42)
    trained = sorted(loaded("mlp").training_set)[0]
    held = sorted(set(parts.val + parts.test) - set(parts.train))[0]
    a, b, c = score(client, [trained.upper(), held, "xqzvk"])
    assert (a["in_data"], a["in_training_set"]) == (True, True)
    assert (b["in_data"], b["in_training_set"]) == (True, False)
    assert (c["in_data"], c["in_training_set"]) == (False, False)


def test_get_scores_one_name_like_the_post(client):
    r = client.get(URL.format("mlp"), params={"name": "José"})
    assert r.status_code == 200
    assert r.json() == {"model": "mlp", "results": score(client, ["José"]), "errors": []}


def test_a_zero_probability_is_null_not_an_error(odd_client):
    """A bigram without smoothing gives P('q' -> 'z') = 0: log 0 is null in JSON."""
    r = odd_client.post(URL.format("bigram0"), json={"names": ["qz", "emma"]})
    qz, emma = ok(r)["results"]
    assert qz["log_prob"] is None and qz["nll_per_char"] is None and qz["perplexity"] is None
    assert qz["plausibility"] == 0.0
    assert qz["steps"][0]["log_prob"] < 0  # '.' -> 'q' was seen (quinn)
    assert qz["steps"][1]["log_prob"] is None and qz["steps"][1]["prob"] == 0.0
    assert emma["log_prob"] < 0


@pytest.mark.parametrize(("names", "field", "words"), [
    ([], "names", ["at least 1 item"]),
    (["a"] * 1001, "names", ["at most 1000 items"]),
    ([""], "0", ["at least 1 character"]),
    (["emma", "a" * 65], "1", ["at most 64 characters"]),
    (["emm4"], "0", ["'4'", ALPHABET]),
    (["jean paul"], "0", ["' '", ALPHABET]),
    (["ann😀"], "0", ["😀", ALPHABET]),
    (["   "], "0", ["empty", ALPHABET]),
    ([5], "0", ["valid string"]),
    ("emma", "names", ["valid list"]),
])
def test_bad_names_are_422_naming_the_characters_and_the_alphabet(client, names, field, words):
    assert_422(client.post(URL.format("mlp"), json={"names": names}), field, *words)


def test_missing_or_unknown_fields_are_422(client):
    assert_422(client.post(URL.format("mlp"), json={}), "names", "Field required")
    assert_422(client.post(URL.format("mlp"), json={"names": ["a"], "x": 1}), "x", "Extra")
    assert_422(client.get(URL.format("mlp")), "name", "Field required")
    error = assert_422(client.get(URL.format("mlp"), params={"name": "4x"}), "name", "'4'")
    assert error["loc"] == ["query", "name"]
    assert_422(client.get(URL.format("mlp"), params={"name": ""}), "name", "at least 1")


@pytest.mark.parametrize(("raw", "status"), [
    (b'{"names": ["\\ud800"]}', 422), (b'{"names": ["a\\u0000b"]}', 422), (b"", 422),
    (b"\xff\xfe", 400), (b"names=emma", 400), (b"{", 400), (b'{"names": ["emma"', 400)])
def test_hostile_bodies_are_4xx_never_500(client, raw, status):
    """A lone surrogate is echoed back in the error: the response must still encode. A body
    that is not JSON is the 400 the OpenAPI document declares, its detail one sentence."""
    r = client.post(URL.format("mlp"), content=raw, headers={"content-type": "application/json"})
    assert r.status_code == status and r.json()["detail"]
    if status == 400:
        assert r.json()["detail"].startswith("the body is not valid JSON: ")


@pytest.mark.parametrize("raw", [
    '{"names": ["emma", NaN]}', '{"names": ["emma"], "x": Infinity}', '{"names": -Infinity}',
    '{"names": [1e309]}', '{"names": {"a": [NaN]}}'])
def test_non_finite_numbers_are_422_with_a_json_body(client, raw):
    """Python's JSON parser takes NaN, Infinity and 1e309; the 422 echoing them was a 500."""
    r = client.post(URL.format("bigram"), content=raw,
                    headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert json.loads(r.text, parse_constant=pytest.fail)["detail"]  # strict JSON
    assert any(e["input"] in ("NaN", "Infinity", "-Infinity") or "NaN" in str(e["input"])
               for e in r.json()["detail"])


def test_unknown_model_is_404(client):
    r = client.post(URL.format("gpt"), json={"names": ["emma"]})
    assert r.status_code == 404 and "available models" in r.json()["detail"]


@pytest.mark.parametrize(("letter", "status"), [("a", 200), ("é", 200), ("\U0001f600", 422)])
def test_the_largest_documented_request_is_not_refused_for_its_size(client, letter, status):
    """1,000 names of 64 characters: 67,011 bytes in ASCII (the issue: a 413 under the old
    64 KiB limit), 385,011 with each 'é' escaped, 771,011 with each emoji escaped (scored
    letters only: a 422 for the alphabet, never a 413 for the size)."""
    body = json.dumps({"names": [letter * 64] * 1000}, separators=(",", ":"))
    r = client.post("/api/models/bigram/score", content=body,
                    headers={"content-type": "application/json"})
    assert r.status_code == status, r.text[:200]
    if status == 200:
        assert len(r.json()["results"]) == 1000


def test_one_bad_name_does_not_cost_the_rest(client):
    """Issue 21: 8 names, one of them bad, was a 422 for the whole batch; the page and the CLI
    scored the rest. Now a result per valid name and an error per invalid one, in one 200."""
    names = ["emma", "liam", "Mary-Jane", "r2d2", "olivia", "noah", "ava", "José"]
    r = client.post(URL.format("mlp"), json={"names": names})
    body = ok(r)
    good = [x for x in names if x != "r2d2"]
    assert [x["name"] for x in body["results"]] == good
    assert body["results"] == score(client, good)  # what they get without the bad one
    (err,) = body["errors"]
    assert (err["index"], err["name"], err["type"]) == (3, "r2d2", "invalid_name")
    assert "'2'" in err["msg"] and ALPHABET in err["msg"]
    # every name bad: nothing to answer with, a 422 naming each
    r = client.post(URL.format("mlp"), json={"names": ["r2d2", "emma!", "x y"]})
    assert r.status_code == 422
    assert [e["loc"] for e in r.json()["detail"]] == [["body", "names", i] for i in range(3)]


def test_the_length_limit_applies_to_the_normalised_name(client):
    """'ﬃ' is one character and three letters: 64 of them passed the 64-character limit and
    were scored as 192 letters."""
    r = client.post("/api/models/bigram/score", json={"names": ["emma", "ﬃ" * 64]})
    assert r.status_code == 200 and [x["name"] for x in r.json()["results"]] == ["emma"]
    (error,) = r.json()["errors"]
    assert error["index"] == 1 and "letters long once normalised; at most 64" in error["msg"]
    for r, loc in ((client.post("/api/models/bigram/score", json={"names": ["ﬃ" * 64]}),
                    ["body", "names", 0]),
                   (client.get("/api/models/bigram/score", params={"name": "ﬃ" * 64}),
                    ["query", "name"]),
                   (client.get("/api/compare", params={"name": "ﬃ" * 22}), ["query", "name"])):
        assert r.status_code == 422, r.text
        (error,) = r.json()["detail"]
        assert error["loc"] == loc and "letters long once normalised; at most 64" in error["msg"]
    assert client.get("/api/models/bigram/score", params={"name": "ﬃ" * 21}).status_code == 200


def test_plausibility_of_held_out_names_is_near_uniform_at_every_length(tmp_path):
    """Issue 21: through the score route, the shipped bigram's held-out names (validation and
    test names it never trained on) of each length 3..10 have plausibilities spread over 0..100:
    their quartiles near 25, 50, 75 (a length under 40 names pooled with its nearest). These
    are the names the reference was fitted on, so this checks that the route serves the
    by-length reference; how fair it is to names it was not fitted on is
    tests/test_shipped.py's cross-fitted test. Under the old all-lengths measure the 3-letter
    names' median was ~10."""
    (tmp_path / "bigram.safetensors").symlink_to(ROOT / "models" / "bigram.safetensors")
    from app.store.checkpoints import load_checkpoint

    ck = load_checkpoint(tmp_path / "bigram.safetensors")
    split = split_words(load_dataset(ck.meta.dataset.spec).words, ck.meta.split.seed)
    held = sorted(set(split.val + split.test) - set(split.train))
    got = {}
    with TestClient(create_app(Settings(models_dir=tmp_path))) as c:
        for i in range(0, len(held), 1000):
            got |= {x["name"]: x["plausibility"] for x in score(c, held[i : i + 1000], "bigram")}
    assert len(got) == len(held)
    for L in range(3, 11):
        near = sorted(held, key=lambda n: abs(len(n) - L))
        k = max(40, sum(1 for n in held if len(n) == L))
        q1, q2, q3 = statistics.quantiles([got[n] for n in near[:k]], n=4)
        assert 12 <= q1 <= 38 and 35 <= q2 <= 65 and 62 <= q3 <= 88, (L, q1, q2, q3)
