"""The scoring page, through TestClient."""

from __future__ import annotations

import math
import re

from app.lm import KINDS
from app.pages.score import split_names
from tests.pages.oracle import bigram_prob


def sections(html: str) -> list[str]:
    """The table's rows, one per name."""
    body = re.search(r'<table class="score-table">.*?</table>', html, re.S)
    return re.findall(r"<tr>\s*<th scope=\"row\".*?</tr>", body.group(0), re.S) if body else []


def cell(html: str, model: str) -> str:
    return re.search(rf'<td class="score-cell" data-model="{model}">.*?</td>', html,
                     re.S).group(0)


def test_each_name_under_each_model(client):
    """A table of names (rows) by models (columns); each cell's letters folded in a <details>
    (open on demand, without JavaScript)."""
    r = client.get("/score", params={"names": "emma\nquinn"})
    assert r.status_code == 200
    secs = sections(r.text)
    assert len(secs) == 2
    for sec, name in zip(secs, ["emma", "quinn"], strict=True):
        assert f'<th scope="row" class="name">{name}</th>' in sec
        assert sec.count('<td class="score-cell"') == len(KINDS)  # conftest: one per kind
        strips = re.findall(r'<details class="letters"><summary>letters</summary>'
                            r'<p class="strip".*?</p></details>', sec, re.S)
        assert len(strips) == len(KINDS)
        for strip in strips:
            letters = re.findall(r'<a class="letter surprise-\d"[^>]*>(.)</a>', strip)
            assert "".join(letters) == name
            assert strip.count('class="end-token') == 1


def test_log_probability_matches_a_sum_written_out(client):
    html = client.get("/score", params={"names": "emma"}).text
    want = sum(math.log(bigram_prob(a, b)) for a, b in zip(".emma", "emma.", strict=True))
    got = cell(html, "bigram")
    assert f"log P <b>{want:.3f}</b>" in got
    assert f"NLL <b>{-want / 5:.3f}</b>" in got


def test_letter_tooltips_give_the_probability(client):
    html = client.get("/score", params={"names": "em"}).text
    p = bigram_prob("e", "m")
    assert f"&#39;m&#39; after &#39;e&#39;: P = {p:.4f}" in html


def test_a_bad_name_is_explained_once(client):
    """Issue 21: one error was repeated in every model's cell."""
    r = client.get("/score", params={"names": "emma\nbob1"})
    assert r.status_code == 200
    assert r.text.count("outside the alphabet: &#39;1&#39;") == 1
    (row,) = [x for x in sections(r.text) if ">bob1<" in x]
    assert f'colspan="{len(KINDS)}"' in row and "score-cell" not in row


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
    """The API's bound (app/domain/params.py: 64 characters) holds on the page too."""
    r = client.get("/score", params={"names": "a" * 65 + " emma"})
    assert r.status_code == 200
    assert r.text.count("name must be at most 64 characters, got 65.") == 1
    assert client.get("/api/compare", params={"name": "a" * 65}).status_code == 422


def test_repeated_names_are_all_scored_and_unknown_parameters_named(client):
    """Issue 21: /score?names=emma&names=liam scored only liam."""
    html = client.get("/score?names=emma&names=liam&model=mlp").text
    assert ">emma<" in html and ">liam<" in html
    assert "Ignored &#39;model&#39;: not a parameter of this page" in html


def test_a_page_is_one_model_thread_request_per_model(client, monkeypatch):
    """20 names under every model: one request per model on the model thread's bounded queue
    (its names batched), not one per cell (20 x 9 = 180 of the queue's 256 places: two visitors
    at once got a 503)."""
    from app.serving import batching

    calls: list[int] = []
    submit = batching.scoring.submit

    async def counted(m, names):  # a request joining the model thread's queue
        calls.append(len(names))
        return await submit(m, names)

    monkeypatch.setattr(batching.scoring, "submit", counted)
    names = [f"{a}{b}na" for a in "bdklm" for b in "aeio"]
    r = client.get("/score", params={"names": "\n".join(names[:19] + ["r2d2"])})
    assert r.status_code == 200
    n_models = len(client.app.state.registry.models)
    assert len(calls) == n_models and calls == [19] * n_models
    assert len(sections(r.text)) == 20


def era_figures(html: str) -> list[str]:
    return re.findall(r'<figure class="era">.*?</figure>', html, re.S)


def test_a_conditional_model_says_when_each_name_sounds_like_it_is_from(client):
    """Under the conditional model: the sentence and a chart of 28 bars whose heights are the
    posterior (the service's, app/domain/era.py), the prior chosen in the form (no JavaScript)."""
    from app.domain import era

    m = client.app.state.registry.models["conditional"]
    for prior in era.PRIORS:
        r = client.get("/score", params={"names": "Mildred\nr2d2\njayden", "prior": prior})
        assert r.status_code == 200
        assert re.search(rf'<input type="radio" name="prior" value="{prior}" checked>', r.text)
        figures = era_figures(r.text)
        assert len(figures) == 2  # r2d2 cannot be scored: no era
        for fig, e in zip(figures, era.eras(m.model, ["mildred", "jayden"], prior), strict=True):
            assert f"<b>{e.name}</b> {e.sentence}" in fig
            heights = [float(h) for h in re.findall(r'<rect [^>]*height="([\d.]+)"', fig)]
            assert len(heights) == 28
            top = max(heights)
            flat = [p for row in e.posterior for p in row]
            for h, p in zip(heights, flat, strict=True):  # proportional to the posterior
                assert math.isclose(h / top, p / max(flat), abs_tol=0.01)


def test_a_bad_prior_is_a_422_naming_the_priors(client):
    r = client.get("/score", params={"names": "emma", "prior": "flat"})
    assert r.status_code == 422 and "records or uniform" in r.text and "flat" in r.text
