"""The sampling page, through TestClient."""

from __future__ import annotations

import re

import pytest

from app.domain.params import SampleParams
from app.domain.services import sample_names


def names(html: str) -> list[str]:
    return re.findall(r'<td class="name"><a [^>]*>([^<]*)</a>', html)


def test_form_without_parameters_samples_ten_names_and_shows_the_seed(client):
    r = client.get("/sample")
    assert r.status_code == 200
    assert len(names(r.text)) == 10
    seed = re.search(r"Seed <strong>(\d+)</strong>", r.text).group(1)
    assert f"seed={seed}" in r.text  # the permalink


def test_same_seed_same_names_as_the_service(client):
    url = "/sample?model=mlp&n=8&seed=42&temperature=0.8&top_k=10&prefix=a"
    first = names(client.get(url).text)
    assert first == names(client.get(url).text)
    m = client.app.state.registry.get("mlp")
    want = sample_names(m, SampleParams(n=8, seed=42, temperature=0.8, top_k=10, prefix="a"))
    assert first == [s.name for s in want.names]
    assert all(n.startswith("a") for n in first)


def test_unique_and_exclude_training(client):
    html = client.get("/sample?model=bigram&n=15&seed=3&unique=1&exclude=1").text
    got = names(html)
    assert len(got) == len(set(got))
    training = client.app.state.registry.get("bigram").training_set
    assert not set(got) & training
    assert 'name="unique" value="1" checked' in html


def test_training_names_get_a_badge(client):
    # 50 names from a bigram of 49 training names: some are training names, most are not
    html = client.get("/sample?model=bigram&n=50&seed=1").text
    m = client.app.state.registry.get("bigram")
    rows = re.findall(r"<tr><td>\d+</td>.*?</tr>", html, re.S)
    for row in rows:
        name = re.search(r'<td class="name"><a [^>]*>([^<]*)<', row).group(1)
        assert ("known name" in row) == (name in m.data_set)
        assert ("held out" in row) == (name in m.data_set - m.training_set)


@pytest.mark.parametrize("query, message", [
    ("n=0", "n must be between 1 and 1000"),
    ("n=abc", "n must be a whole number"),
    ("temperature=0", "temperature must be greater than 0"),
    ("temperature=nan", "temperature must be greater than 0"),
    ("top_k=99", "top-k must be between 1 and 27"),
    ("seed=-1", "seed must be between 0"),
    ("prefix=%C3%B1%3F", "has characters outside the alphabet"),
    ("model=nope", "There is no model called"),
])
def test_bad_input_is_shown_next_to_the_form(client, query, message):
    r = client.get("/sample?" + query)
    assert r.status_code in (422, 404)
    assert message in r.text
    assert '<form class="controls sample-form"' in r.text


def test_the_page_says_when_the_deadline_cut_sampling_short(client, deadline_after):
    deadline_after(20)
    r = client.get("/sample?model=mlp&n=200&unique=1&temperature=0.00001&seed=1")
    assert r.status_code == 200
    assert len(names(r.text)) == 1 and "Only 1 names" in r.text
    assert "s of model time, a safety net" in r.text


@pytest.mark.parametrize("prefix", ["a" * 33, "ⅷ" * 9, "ﬃ" * 22, "x" * 65])
def test_a_prefix_too_long_is_the_page_with_an_error_not_a_500(client, prefix):
    """33 letters (or 'ⅷ' x 9, 36 letters once normalised) were a JSON 500."""
    r = client.get("/sample", params={"model": "bigram", "prefix": prefix})
    assert r.status_code == 422 and r.headers["content-type"].startswith("text/html")
    # Too long for max_len, or (65 characters) for the prefix's own bound, checked first.
    assert 'role="alert"' in r.text
    assert "letters long" in r.text or "at most 64 characters" in r.text
    assert 'name="prefix"' in r.text  # the form, to correct it
def test_max_len_is_honoured_and_the_form_shows_every_bound(client):
    r = client.get("/sample?model=bigram&n=40&seed=3&max_len=3")
    assert r.status_code == 200
    names = re.findall(r'<td class="name"><a [^>]*>([a-z]+)</a>', r.text)
    assert len(names) == 40 and max(map(len, names)) <= 3
    assert 'name="max_len"' in r.text and 'value="3"' in r.text
    for bound in ["1 to 1000", "1 to 64 letters", "1 to 27", "at most 5"]:  # SampleParams'
        assert bound in r.text
    r = client.get("/sample?max_len=65")
    assert r.status_code == 422 and "max length must be between 1 and 64" in r.text


def test_more_options_constrain_the_names_and_say_the_mass(client):
    html = client.get("/sample?model=bigram&n=6&seed=2&suffix=lyn&min_len=5").text
    got = names(html)
    assert len(got) == 6 and all(x.endswith("lyn") and len(x) >= 5 for x in got)
    assert re.search(r'<details class="more-options" open>', html)
    sentence = re.search(r'<p class="note" id="fit" role="status">([^<]*)</p>', html).group(1)
    assert re.fullmatch(r"[\d.]+% of this model&#39;s names end in \u2011lyn and have at least 5 "
                        r"letters\.", sentence), sentence
    assert "suffix=lyn" in html and "min_len=5" in html  # the permalink keeps them


def test_the_mlp_page_says_how_many_draws_a_rare_constraint_took(client):
    html = client.get("/sample?model=mlp&n=3&seed=2&suffix=lyn").text
    assert len(names(html)) == 3
    assert re.search(r"About [\d.]+% of this model&#39;s names end in \u2011lyn \(\d+ of [\d,]+ "
                     r"draws fit\)\. It took [\d,]+ draws to find these 3\.", html)


def test_without_more_options_the_group_is_folded_and_no_mass_is_shown(client):
    html = client.get("/sample?model=bigram&n=3&seed=2").text
    assert '<details class="more-options">' in html and 'id="fit"' not in html


@pytest.mark.parametrize(("query", "words"), [("pattern=(ab", "not a valid regular expression"),
                                              ("suffix=lyn&max_len=2", "no name of 1 to 2"),
                                              ("pattern=%28a%7B0%2C50%7D%29%7B0%2C50%7D",
                                               "too large to compile"),
                                              ("top_p=2", "top-p must be")])
def test_a_bad_constraint_is_an_error_in_the_page(client, query, words):
    r = client.get(f"/sample?model=bigram&{query}")
    assert r.status_code == 422 and words.lower() in r.text.lower()
    assert '<details class="more-options" open>' in r.text or "top_p" in query


def test_the_apis_parameter_names_work_and_unknown_ones_are_named(client):
    """Issue 21: /sample?exclude_training=true was ignored (the page's name is `exclude`)."""
    m = client.app.state.registry.get("bigram")
    html = client.get("/sample?model=bigram&n=30&seed=1&exclude_training=true").text
    rows = re.findall(r'<td class="name"><a [^>]*>([^<]*)<', html)
    assert rows and not set(rows) & m.data_set
    assert 'name="exclude" value="1" checked' in html and "Ignored" not in html
    html = client.get("/sample?model=bigram&n=3&seed=1&colour=red").text
    assert "Ignored &#39;colour&#39;: not a parameter of this page" in html


def test_the_page_samples_through_the_apis_chunked_queue(client, monkeypatch):
    """The page's names come from the queue the API's requests take (app/serving/batching.py: served
    in chunks, a turn per client), never from one uninterrupted run on the model thread."""
    from app.serving import batching

    calls = []
    sample = batching.sample

    async def spied(m, p):
        calls.append((m.name, p.n, p.seed))
        return await sample(m, p)

    monkeypatch.setattr(batching, "sample", spied)
    r = client.get("/sample", params={"model": "mlp", "n": 7, "seed": 3})
    assert r.status_code == 200 and calls == [("mlp", 7, 3)]
    api = client.get("/api/models/mlp/sample", params={"n": 7, "seed": 3}).json()
    for name in api["names"]:
        assert f">{name['name']}</a>" in r.text


def test_a_decade_and_sex_sample_the_conditional_model_and_other_kinds_say_which_take_them(
        client):
    url = "/sample?model=conditional&n=6&seed=5&decade=1920&sex=F"
    r = client.get(url)
    assert r.status_code == 200
    m = client.app.state.registry.get("conditional")
    want = sample_names(m, SampleParams(n=6, seed=5, decade=1920, sex="F"))
    assert names(r.text) == [s.name for s in want.names]
    assert 'name="decade"' in r.text and 'value="1920"' in r.text and 'step="10"' in r.text
    r = client.get("/sample?model=mlp&decade=1920")
    assert r.status_code == 422 and "kind conditional" in r.text
    r = client.get("/sample?model=conditional&decade=1925")
    assert r.status_code == 422 and "1880, 1890" in r.text
