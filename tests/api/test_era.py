"""GET /api/models/{model}/era and sampling by decade and sex, on the session's tiny models (the
tiny conditional model is the kind's tiny config trained on plain names)."""

from __future__ import annotations

import math

import pytest
import torch

from app.domain import era
from app.lm import KINDS
from tests.api.api_helpers import assert_422, ok

URL = "/api/models/{}/era"
CONDITIONAL = [k for k, kind in KINDS.items() if kind.has_conditions]
OTHERS = [k for k in KINDS if k not in CONDITIONAL]


@pytest.mark.parametrize("prior", ["records", "uniform"])
def test_the_posterior_sums_to_one_and_is_the_service_s(client, prior):
    body = ok(client.get(URL.format("conditional"), params={"name": " Mildred", "prior": prior}))
    assert body["name"] == "mildred" and body["prior"] == prior
    assert body["decades"] == list(range(1880, 2020, 10)) and body["sexes"] == ["F", "M"]
    post = torch.tensor(body["posterior"], dtype=torch.float64)
    assert post.shape == (2, 14) and math.isclose(float(post.sum()), 1, abs_tol=1e-9)
    torch.testing.assert_close(torch.tensor(body["by_decade"], dtype=torch.float64), post.sum(0))
    best = body["most_likely"]
    s, d = divmod(int(post.argmax()), 14)
    assert (best["sex"], best["decade"]) == ("FM"[s], 1880 + 10 * d)
    assert body["sentence"] == (f"sounds most like the {best['decade']}s "
                                f"({'girls' if best['sex'] == 'F' else 'boys'}), "
                                f"{100 * best['probability']:.0f}%")
    app_model = client.app.state.registry.models["conditional"].model
    (want,) = era.eras(app_model, ["mildred"], prior)
    assert body["posterior"] == want.posterior


@pytest.mark.parametrize("model", OTHERS)
def test_a_model_without_conditions_is_a_422_naming_the_kinds_that_have_them(client, model):
    r = client.get(URL.format(model), params={"name": "emma"})
    assert_422(r, "model", "conditional", model)


def test_bad_names_and_priors_are_422s(client):
    assert_422(client.get(URL.format("conditional"), params={"name": "r2d2"}), "name", "2")
    assert_422(client.get(URL.format("conditional"), params={"name": "emma", "prior": "x"}),
               "prior", "records", "uniform")
    assert client.get(URL.format("nope"), params={"name": "emma"}).status_code == 404


SAMPLE = "/api/models/{}/sample"


def test_sampling_by_decade_and_sex_repeats_with_a_seed(client):
    body = {"n": 8, "seed": 7, "decade": 1920, "sex": "F"}
    a = ok(client.post(SAMPLE.format("conditional"), json=body))
    b = ok(client.get(SAMPLE.format("conditional"), params=body))
    assert [x["name"] for x in a["names"]] == [x["name"] for x in b["names"]]
    assert len(a["names"]) == 8


def test_sampling_under_a_condition_draws_from_the_conditioned_model(client):
    """The same seed without a condition and with one draws from two distributions: the names
    are those the conditioned model gives (checked on the model under the condition)."""
    from app.domain.services import sample_names, under_condition

    m = client.app.state.registry.models["conditional"]
    from app.domain.params import SampleParams

    p = SampleParams(n=20, seed=3, decade=1950, sex="M")
    got = ok(client.post(SAMPLE.format("conditional"), json={"n": 20, "seed": 3,
                                                                "decade": 1950, "sex": "M"}))
    view = under_condition(m, 1950, "M")
    assert view.model is m.model.conditioned(7, 1)
    assert [x["name"] for x in got["names"]] == [s.name for s in sample_names(m, p).names]


@pytest.mark.parametrize(("field", "value", "words"), [
    ("decade", 1925, ["1880", "1890", "2010"]),
    ("decade", 1870, ["1880", "2010"]),
    ("decade", 2020, ["2010"]),
    ("sex", "X", ["F or M"]),
])
def test_bad_decades_and_sexes_are_422s_naming_the_allowed_values(client, field, value, words):
    for r in (client.post(SAMPLE.format("conditional"), json={field: value}),
              client.get(SAMPLE.format("conditional"), params={field: value})):
        assert_422(r, field, *words)


@pytest.mark.parametrize("model", OTHERS)
@pytest.mark.parametrize("field", ["decade", "sex"])
def test_sampling_a_condition_from_another_kind_is_a_422_naming_the_kinds(client, model, field):
    value = 1920 if field == "decade" else "F"
    r = client.post(SAMPLE.format(model), json={field: value})
    assert_422(r, field, "conditional", model)


NEXT = "/api/models/{}/next"


def test_the_next_letter_under_two_decades_is_each_conditioned_models(client):
    """symbols: the model under (decade, sex); versus: under (vs_decade, sex); each the
    softmax of the conditioned model's logits after the prefix (written out here)."""
    from app.lm.base import build_examples

    m = client.app.state.registry.models["conditional"].model
    body = ok(client.get(NEXT.format("conditional"),
                         params={"prefix": "ma", "decade": 1920, "sex": "F",
                                 "vs_decade": 2000}))
    assert (body["decade"], body["sex"], body["vs_decade"]) == (1920, "F", 2000)
    X, _ = build_examples(["ma"], m.vocab, m.block_size)
    for key, d in (("symbols", 4), ("versus", 12)):
        probs = torch.softmax(m.conditioned(d, 0).layer_logits(X[-1:]).double(), 1)[0]
        got = {s["char"]: s["prob"] for s in body[key]}
        for i, ch in enumerate(m.vocab.itos):
            assert math.isclose(got[ch], float(probs[i]), rel_tol=1e-4, abs_tol=1e-7)
    plain = ok(client.get(NEXT.format("conditional"), params={"prefix": "ma"}))
    assert plain["versus"] is None and plain["symbols"] != body["symbols"]


@pytest.mark.parametrize("field", ["decade", "vs_decade", "sex"])
def test_the_next_letter_of_another_kind_refuses_a_condition(client, field):
    value = "M" if field == "sex" else 1950
    r = client.get(NEXT.format("mlp"), params={"prefix": "a", field: value})
    assert_422(r, field, "conditional", "mlp")


def test_a_checkpoint_whose_prior_is_no_distribution_is_a_422_and_uniform_still_works(
        client):
    m = client.app.state.registry.models["conditional"].model
    saved = m.prior.clone()
    m.prior.copy_(-saved)  # what a tampered file could hold (finite, small: it loads)
    try:
        r = client.get(URL.format("conditional"), params={"name": "emma"})
        assert_422(r, "prior", "not a distribution", "uniform")
        ok(client.get(URL.format("conditional"), params={"name": "emma", "prior": "uniform"}))
        page = client.get("/score", params={"names": "emmaline", "prior": "records"})
        assert page.status_code == 422 and "not a distribution" in page.text
    finally:
        m.prior.copy_(saved)
