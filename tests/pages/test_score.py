"""The scoring page, through TestClient."""

from __future__ import annotations

import math
import re

from app.lm import KINDS
from app.pages.score import split_names
from tests.pages.oracle import bigram_prob


def sections(html: str) -> list[str]:
    return re.findall(r'<section class="scored".*?</section>', html, re.S)


def test_each_name_under_each_model(client):
    r = client.get("/score", params={"names": "emma\nquinn"})
    assert r.status_code == 200
    secs = sections(r.text)
    assert len(secs) == 2
    for sec, name in zip(secs, ["emma", "quinn"], strict=True):
        assert sec.count('<div class="model-score">') == len(KINDS)  # conftest: one per kind
        strips = re.findall(r'<p class="strip".*?</p>', sec, re.S)
        for strip in strips:
            letters = re.findall(r'<a class="letter surprise-\d"[^>]*>(.)</a>', strip)
            assert "".join(letters) == name
            assert strip.count('class="end-token') == 1


def test_log_probability_matches_a_sum_written_out(client):
    html = client.get("/score", params={"names": "emma"}).text
    want = sum(math.log(bigram_prob(a, b)) for a, b in zip(".emma", "emma.", strict=True))
    cell = re.search(r'<a href="/models/bigram">bigram</a>.*?</dl>', html, re.S).group(0)
    assert f"<dd>{want:.3f}</dd>" in cell
    assert f"<dd>{-want / 5:.3f}</dd>" in cell


def test_letter_tooltips_give_the_probability(client):
    html = client.get("/score", params={"names": "em"}).text
    p = bigram_prob("e", "m")
    assert f"&#39;m&#39; after &#39;e&#39;: P = {p:.4f}" in html


def test_bad_names_are_explained_per_model(client):
    r = client.get("/score", params={"names": "emma\nbob1"})
    assert r.status_code == 200
    assert "outside the alphabet: &#39;1&#39;" in r.text


def test_nothing_scorable_is_a_422(client):
    r = client.get("/score", params={"names": "123"})
    assert r.status_code == 422 and "None of the names could be scored" in r.text


def test_empty_form(client):
    r = client.get("/score")
    assert r.status_code == 200 and "<textarea" in r.text and not sections(r.text)


def test_too_many_names(client):
    r = client.get("/score", params={"names": " ".join(["ann"] * 21)})
    assert r.status_code == 422 and "score at most 20" in r.text


def test_split_names():
    assert split_names("emma\r\nava, mia;zoe  ") == ["emma", "ava", "mia", "zoe"]
    assert split_names("") == []


def test_a_name_longer_than_the_api_allows_is_refused_like_there(client):
    """The API's bound (app/params.py: 64 characters) holds on the page too."""
    r = client.get("/score", params={"names": "a" * 65 + " emma"})
    assert r.status_code == 200
    assert "name must be at most 64 characters, got 65." in r.text
    assert client.get("/api/compare", params={"name": "a" * 65}).status_code == 422


def test_repeated_names_are_all_scored_and_unknown_parameters_named(client):
    """Issue 21: /score?names=emma&names=liam scored only liam."""
    html = client.get("/score?names=emma&names=liam&model=mlp").text
    assert ">emma<" in html and ">liam<" in html
    assert "Ignored &#39;model&#39;: not a parameter of this page" in html
