import json
import math
import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from app.api.schemas import SampleResponse
from app.data import split_words
from app.domain import services
from app.lm import KINDS
from app.lm.constraints import MAX_WORK
from tests.api.api_helpers import ALPHABET, assert_422, ok
from tests.conftest import TINY_NAMES

URL = "/api/models/{}/sample"


def sample(client, model="mlp", **body):
    r = client.post(URL.format(model), json=body)
    return ok(r)


def names(resp):
    return [x["name"] for x in resp["names"]]


@pytest.mark.parametrize("model", list(KINDS))
def test_defaults_give_ten_names_and_the_seed_used(client, model):
    r = client.post(URL.format(model))  # no body at all: every field has a default
    body = ok(r)
    assert body["model"] == model and not body["exhausted"]
    assert 0 <= body["seed"] <= 2**32 - 1
    assert len(body["names"]) == 10
    for x in body["names"]:
        assert 1 <= len(x["name"]) <= 32 and set(x["name"]) <= set(ALPHABET)


def test_the_response_is_exactly_the_documented_model(client):
    body = sample(client, n=5, seed=1)
    assert SampleResponse.model_validate(body).model_dump() == body  # no field missing or extra


def test_same_seed_same_names_post_and_get(client):
    a = sample(client, n=20, seed=7, temperature=1.3)
    b = sample(client, n=20, seed=7, temperature=1.3)
    c = client.get(URL.format("mlp"), params={"n": 20, "seed": 7, "temperature": 1.3}).json()
    assert a == b == c
    assert names(sample(client, n=20, seed=8, temperature=1.3)) != names(a)


def test_a_drawn_seed_replays(client):
    first = sample(client, n=5)
    assert sample(client, n=5, seed=first["seed"]) == first


def test_same_seed_same_names_under_concurrent_load(client):
    """Each request has its own generator: interleaved requests cannot disturb each other."""
    expected = {seed: sample(client, n=50, seed=seed) for seed in (1, 2, 3)}
    jobs = [1, 2, 3] * 8
    with ThreadPoolExecutor(max_workers=8) as pool:
        got = list(pool.map(lambda s: sample(client, n=50, seed=s), jobs))
    assert all(g == expected[s] for s, g in zip(jobs, got, strict=True))


@pytest.mark.parametrize("model", ["bigram", "mlp"])
@pytest.mark.parametrize("extra", [{}, {"prefix": "an"}, {"max_len": 3}, {"top_k": 2}])
def test_log_prob_is_the_score_at_temperature_one(client, loaded, model, extra):
    """Sampled hot (and with a prefix, or cut at max_len), scored at T = 1: the sampler's
    log_prob is what the score endpoint says, end token included."""
    body = sample(client, model, n=30, seed=3, temperature=2.0, **extra)
    scored = client.post(f"/api/models/{model}/score", json={"names": names(body)}).json()
    train = loaded(model).training_set
    for x, s in zip(body["names"], scored["results"], strict=True):
        # float32 forward passes over different batches: equal to ~1e-7, not bit for bit
        assert math.isclose(x["log_prob"], s["log_prob"], rel_tol=1e-6)
        assert math.isclose(x["nll_per_char"], -x["log_prob"] / (len(x["name"]) + 1))
        assert x["in_training_set"] == (x["name"] in train)


def test_prefix_is_normalised_and_starts_every_name(client):
    body = sample(client, n=30, seed=1, prefix=" Án ")
    assert all(n.startswith("an") for n in names(body))


@pytest.mark.parametrize("max_len", [1, 3])
def test_max_len_bounds_every_name(client, max_len):
    assert all(1 <= len(n) <= max_len for n in names(sample(client, n=50, seed=1,
                                                           max_len=max_len)))


def test_top_k_one_is_greedy(client):
    assert len(set(names(sample(client, n=20, top_k=1, seed=5)))) == 1


def test_unique_and_exclude_training(client, loaded):
    """exclude_training leaves out every name of the model's data: its training split and its
    held-out names (issue 21: it returned real names of the validation split)."""
    data = set(split_words(TINY_NAMES, 42).val + split_words(TINY_NAMES, 42).test)
    assert loaded("bigram").data_set == frozenset(TINY_NAMES) and data - loaded(
        "bigram").training_set
    body = sample(client, "bigram", n=100, seed=2, max_len=4, unique=True,
                  exclude_training=True)
    got = names(body)
    assert len(got) == len(set(got)) == 100 and not body["exhausted"]
    assert not set(got) & set(TINY_NAMES)
    assert not any(x["in_data"] or x["in_training_set"] for x in body["names"])


def test_impossible_requests_come_back_short_and_exhausted(client, loaded):
    # Only one name has 4 letters and starts with 'emma': ten distinct ones cannot exist.
    body = sample(client, n=10, seed=1, prefix="emma", max_len=4, unique=True)
    assert names(body) == ["emma"] and body["exhausted"] and not body["timed_out"]  # a count
    # ... and a training name is the only candidate here, so none may come back at all.
    name = sorted(loaded("mlp").training_set)[0]
    body = sample(client, n=3, seed=1, prefix=name, max_len=len(name), exclude_training=True)
    assert body["names"] == [] and body["exhausted"] and not body["timed_out"]


def test_tiny_temperature_is_greedy_not_an_error(client):
    assert len(set(names(sample(client, n=10, temperature=1e-300, seed=1)))) == 1


@pytest.mark.parametrize(("field", "value", "words"), [
    ("n", 0, ["greater than or equal to 1"]),
    ("n", 1001, ["less than or equal to 1000"]),
    ("n", "ten", ["valid integer"]),
    ("n", 10.5, ["valid integer"]),
    ("n", None, ["valid integer"]),
    ("temperature", 0, ["greater than 0"]),
    ("temperature", -1, ["greater than 0"]),
    ("temperature", 5.01, ["less than or equal to 5"]),
    ("temperature", "hot", ["valid number"]),
    ("top_k", 0, ["greater than or equal to 1"]),
    ("top_k", 28, ["less than or equal to 27", "vocabulary size"]),
    ("seed", -1, ["greater than or equal to 0"]),
    ("seed", 2**32, ["less than or equal to 4294967295"]),
    ("seed", True, ["valid integer"]),
    ("prefix", "a1", ["'1'", ALPHABET]),
    ("prefix", "a b", ["' '", ALPHABET]),
    ("prefix", "😀", ["😀", ALPHABET]),
    ("prefix", "a" * 65, ["at most 64 characters"]),
    ("prefix", 5, ["valid string"]),
    ("max_len", 0, ["greater than or equal to 1"]),
    ("max_len", 65, ["less than or equal to 64"]),
    ("unique", "yes", ["valid boolean"]),
    ("exclude_training", 1, ["valid boolean"]),
])
def test_every_bad_field_is_a_422_naming_field_and_bound(client, field, value, words):
    body = {field: value}
    assert_422(client.post(URL.format("mlp"), json=body), field, *words)


def test_prefix_longer_than_max_len_is_a_422(client):
    r = client.post(URL.format("mlp"), json={"prefix": "emma", "max_len": 3})
    assert_422(r, "max_len", "prefix 'emma'", "(4 letters)")


def test_unknown_fields_and_non_objects_are_422_malformed_json_400(client):
    assert_422(client.post(URL.format("mlp"), json={"count": 3}), "count", "Extra inputs")
    r = client.post(URL.format("mlp"), content=b'{"n": 3,',
                    headers={"content-type": "application/json"})
    assert r.status_code == 400 and "not valid JSON" in r.json()["detail"]
    r = client.post(URL.format("mlp"), json=[1, 2])
    assert r.status_code == 422


@pytest.mark.parametrize(("params", "field", "words"), [
    ({"n": "ten"}, "n", ["valid integer"]),
    ({"n": 0}, "n", ["greater than or equal to 1"]),
    ({"temperature": "nan"}, "temperature", ["finite number"]),
    ({"top_k": 99}, "top_k", ["less than or equal to 27"]),
    ({"prefix": "x!"}, "prefix", ["'!'", ALPHABET]),
    ({"count": 3}, "count", ["Extra inputs"]),
])
def test_get_query_parameters_are_checked_the_same_way(client, params, field, words):
    assert_422(client.get(URL.format("mlp"), params=params), field, *words)


def test_unknown_model_is_404(client):
    for r in (client.post(URL.format("gpt"), json={}), client.get(URL.format("gpt"))):
        assert r.status_code == 404
        assert "available models: bigram, conditional, mlp" in r.json()["detail"]


@pytest.mark.parametrize(("temperature", "top_k"), [(1.0, None), (0.5, None), (1.0, 3)])
def test_draws_follow_the_models_probabilities(client, temperature, top_k):
    """5000 one-letter bigram names (max_len=1) against the table: a name c is drawn with
    probability Q(c | '.') Q(end | c), Q being P sharpened by the temperature (p ** (1/T)), cut
    to the top k and renormalised: max_len conditions on the length (issue 21), it does not
    cut longer names down to their first letter."""
    probs = client.get("/api/models/bigram/bigram").json()["probs"]

    def q(row, no_end=False):
        weights = [0.0 if no_end and j == 0 else p ** (1 / temperature)
                   for j, p in enumerate(row)]
        if top_k:
            kth = sorted(weights, reverse=True)[top_k - 1]
            weights = [w if w >= kth else 0.0 for w in weights]
        return [w / sum(weights) for w in weights]

    first = q(probs[0], no_end=True)
    weights = [first[i] * q(probs[i])[0] for i in range(1, len(first))]
    expected = [w / sum(weights) for w in weights]
    draws = []
    for seed in range(5):
        body = sample(client, "bigram", n=1000, seed=seed, max_len=1,
                      temperature=temperature, top_k=top_k)
        assert body["drawn"] == body["fits"] == 1000  # the bigram is sampled exactly
        draws += names(body)
    counts = Counter(draws)
    observed = [counts[c] / len(draws) for c in ALPHABET]
    assert max(abs(o - e) for o, e in zip(observed, expected, strict=True)) < 0.03
    assert all(counts[c] == 0 for c, e in zip(ALPHABET, expected, strict=True) if e == 0)


def test_a_request_stops_at_its_deadline_with_the_names_found(client, deadline_after):
    """The issue's case: greedy (temperature 1e-30) and unique gives one name, then drew up to
    50,000 more looking for others, holding the model thread ~10 s. Now it stops at the
    request's deadline (here: its 30th look at the clock, no real time involved)."""
    deadline = deadline_after(30)
    body = {"n": 1000, "unique": True, "temperature": 1e-30, "seed": 1, "max_len": 64}
    r = client.post(URL.format("mlp"), json=body)
    out = ok(r)
    assert out["exhausted"] is True and out["timed_out"] is True
    assert len(out["names"]) == 1  # greedy: one name, found before the deadline
    assert deadline.looks <= 32  # stopped at the deadline (one look per forward pass)


def test_a_deadline_passed_before_any_name_finished_gives_none(client, deadline_after):
    deadline_after(1)
    r = client.get(URL.format("bigram") + "?n=5&seed=3")
    assert r.status_code == 200 and r.json()["exhausted"] is True and r.json()["names"] == []
    assert r.json()["timed_out"] is True


def test_a_round_the_deadline_stops_counts_for_nothing(client, deadline_after, monkeypatch):
    """Rejection draws rounds until n names fit. A round the deadline stops partway is dropped
    whole: the answer has the names, draws and fits of the rounds before it, and its mass is
    their ratio. (Before, the cut round's finished rows were kept: its short names, and its
    rejections counted as draws while its growing rows did not.)"""
    rounds: list[tuple[int, services.Drawn]] = []  # (looks before the round, what it drew)
    real = services.sampler

    def recording(*args, **kwargs):
        start = counted.looks
        drawn = yield from real(*args, **kwargs)
        rounds.append((start, drawn))
        return drawn

    monkeypatch.setattr(services, "sampler", recording)
    body = {"n": 40, "seed": 4, "suffix": "a", "max_len": 12}
    counted = deadline_after(10**9)  # never passes: counts the looks
    full = sample(client, **body)
    assert len(rounds) >= 2 and not full["timed_out"]
    starts, first = [s for s, _ in rounds[:2]], rounds[0][1]
    rounds.clear()
    counted = deadline_after(starts[1] + 8)  # passes 8 steps into the second round
    cut = sample(client, **body)
    assert [s for s, _ in rounds] == starts  # the same rounds, up to the cut one
    assert cut["timed_out"] and cut["exhausted"]
    assert names(cut) == first.names == names(full)[: first.fits]
    assert (cut["drawn"], cut["fits"]) == (first.drawn, first.fits)
    assert cut["constraint_mass"] == pytest.approx(first.fits / first.drawn)


SLOW_SAMPLES = [{"seed": 5}, {"n": 50, "seed": 6}, {"n": 20, "seed": 7, "unique": True},
                {"n": 10, "seed": 8, "prefix": "a", "exclude_training": True},
                {"n": 30, "seed": 9, "temperature": 1.5, "max_len": 12}]


@pytest.mark.parametrize("model", sorted(KINDS))
def test_samples_do_not_depend_on_the_model_threads_speed(client, slow_model_thread, model):
    """The same seed gives the same names on a model thread where every forward pass takes
    0.2 s (with a 1 s deadline, names of 5 letters and more were lost), and says it was not
    cut short; POST and GET alike."""
    fast = [sample(client, model, **body) for body in SLOW_SAMPLES]
    slow_model_thread(0.2)
    slow = [sample(client, model, **body) for body in SLOW_SAMPLES]
    got = client.get(URL.format(model), params=SLOW_SAMPLES[1])
    assert slow == fast and got.json() == fast[1]
    assert all(not b["timed_out"] for b in slow)
    assert any(len(x) >= 5 for x in names(fast[1]))  # what the slow clock would have cut


@pytest.mark.parametrize("raw", [
    '{"temperature": NaN}', '{"temperature": Infinity}', '{"temperature": -Infinity}',
    '{"temperature": 1e309}', '{"n": NaN}', '{"seed": Infinity}', '{"unknown": Infinity}',
    '{"top_k": -1e309}'])
def test_non_finite_numbers_are_422_with_a_json_body(client, raw):
    """Python's JSON parser takes NaN, Infinity and 1e309; the 422 echoing them was a 500."""
    r = client.post(URL.format("bigram"), content=raw,
                    headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    (error,) = json.loads(r.text, parse_constant=pytest.fail)["detail"]  # strict JSON
    assert error["input"] in ("NaN", "Infinity", "-Infinity")


def test_a_body_that_is_not_json_is_the_declared_400(client):
    r = client.post(URL.format("bigram"), content="{", headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert r.json() == {"detail": "the body is not valid JSON: Expecting property name enclosed "
                                  "in double quotes (at character 1)"}


# --- names that fit (issue 26) -------------------------------------------------------------------


@pytest.mark.parametrize("model", ["bigram", "mlp"])
def test_constrained_names_fit_and_the_answer_says_how_many_draws(client, model):
    body = sample(client, model, n=10, seed=4, suffix="A", contains="r", min_len=4, max_len=9)
    got = names(body)
    assert len(got) == 10 and not body["exhausted"]
    assert all(x.endswith("a") and "r" in x and 4 <= len(x) <= 9 for x in got)
    assert 0 < body["constraint_mass"] < 1 and body["fits"] >= 10
    if model == "bigram":  # exact: every draw fits, the mass is computed
        assert body["mass_exact"] and body["drawn"] == body["fits"] == 10
    else:  # rejection: the mass is the share of draws that fit
        assert not body["mass_exact"] and body["drawn"] > body["fits"]
        assert body["constraint_mass"] == pytest.approx(body["fits"] / body["drawn"])
    SampleResponse.model_validate(body)


def test_a_pattern_is_matched_by_the_whole_name_and_get_agrees_with_post(client):
    body = sample(client, "bigram", n=20, seed=5, pattern="Ma.*(lyn|lee)")
    assert all(re.fullmatch("ma.*(lyn|lee)", x) for x in names(body))
    r = client.get(URL.format("bigram"), params={"n": 20, "seed": 5, "pattern": "Ma.*(lyn|lee)"})
    assert r.json() == body


def test_same_seed_same_fitting_names_when_requests_are_concurrent(client):
    bodies = [{"n": 5, "seed": s, "suffix": "na", "min_len": 4} for s in range(6)]
    alone = [sample(client, "mlp", **b) for b in bodies]
    with ThreadPoolExecutor(6) as pool:
        together = list(pool.map(lambda b: sample(client, "mlp", **b), bodies))
    assert together == alone


def test_the_draws_bound_is_the_documented_one(client):
    """A rare constraint draws at most max(20,000, 50n) names: 25,000 for n=500 (docs/api.md
    said 20,000); the OpenAPI schema and docs/api.md state it from the code's constants."""
    body = sample(client, n=500, seed=1, suffix="qqq")
    assert body["exhausted"] and not body["timed_out"] and body["fits"] < 500
    assert body["drawn"] == max(services.MAX_CONSTRAINED_DRAWS, services.MAX_SAMPLE_DRAWS * 500)
    schema = client.get("/openapi.json").json()["components"]["schemas"]["SampleResponse"]
    said = schema["properties"]["exhausted"]["description"]
    api_md = (Path(__file__).parents[2] / "docs" / "api.md").read_text()
    for bound in (services.DRAWS_BOUND, services.CONSTRAINED_DRAWS_BOUND):
        assert bound in said and bound in api_md, bound
    assert services.CONSTRAINED_DRAWS_BOUND == "max(20,000, 50n)"


@pytest.mark.parametrize(("body", "field", "words"), [
    ({"pattern": "(ab"}, "pattern", ["not a valid regular expression"]),
    ({"pattern": "^ma"}, "pattern", ["no anchors"]),
    ({"pattern": "q{40}", "max_len": 30}, "pattern", ["no name of 1 to 30 letters"]),
    ({"pattern": ".*a.{20}"}, "pattern", ["too large", "states"]),
    ({"pattern": "(a{0,50}){0,50}"}, "pattern", ["too large to compile", f"{MAX_WORK:,} steps"]),
    ({"pattern": "((a{0,99}){0,99}){0,99}"}, "pattern", ["too large to compile", "steps"]),
    ({"pattern": "([a-z]{0,30}){0,30}"}, "pattern", ["too large to compile", "steps"]),
    ({"pattern": "a" * 101}, "pattern", ["at most 100"]),
    ({"suffix": "lyn", "max_len": 2}, "suffix", ["no name"]),
    ({"suffix": "ly9"}, "suffix", ["outside the alphabet"]),
    ({"contains": "é!"}, "contains", ["outside the alphabet"]),
    ({"min_len": 6, "max_len": 5}, "min_len", ["at most max length (5)"]),
    ({"min_len": 0}, "min_len", []),
    ({"top_p": 0}, "top_p", []),
    ({"top_p": 1.5}, "top_p", []),
    ({"min_p": 1}, "min_p", []),
    ({"min_p": -0.1}, "min_p", []),
])
def test_bad_constraints_and_knobs_are_422_naming_the_field(client, body, field, words):
    assert_422(client.post(URL.format("mlp"), json=body), field, *words)
    query = {k: str(v) for k, v in body.items()}
    assert_422(client.get(URL.format("bigram"), params=query), field, *words)


def test_max_len_never_cuts_a_name(client):
    """Issue 21: `?max_len=3` returned truncated strings; now every name ended by itself."""
    for model in ("bigram", "mlp"):
        body = sample(client, model, n=200, seed=1, max_len=3)
        assert len(body["names"]) == 200 and all(len(x) <= 3 for x in names(body))
        # a name ended there: its log-probability includes the end token, as scoring's does
        scored = client.post(f"/api/models/{model}/score",
                             json={"names": names(body)[:20]}).json()["results"]
        for s, x in zip(scored, body["names"][:20], strict=True):
            assert s["log_prob"] == pytest.approx(x["log_prob"], abs=1e-4)
