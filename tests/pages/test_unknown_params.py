"""Issue 21.8: every page names a query parameter it does not read (app/web.py's render) rather
than ignoring it, and the score page takes the API's GET parameter `name`, repeated too."""

from __future__ import annotations

import re

import pytest

# each page, with every parameter it reads (none of which may be named as ignored)
PAGES = {
    "/": "",
    "/bigram": "model=bigram&view=counts&row=a",
    "/bigram/compare": "a=bigram&b=neural-bigram",
    "/embeddings": "model=mlp&view=dims&x=0&y=1&letter=a",
    "/next": "model=mlp&prefix=em&temperature=0.8&top_k=5&top_p=0.9&min_p=0.01",
    "/models/transformer": "name=emma",
    "/sample": "model=mlp&n=3&seed=1&temperature=1&top_k=5&prefix=a&max_len=9&suffix=a&"
               "contains=a&pattern=a.*&min_len=2&top_p=0.9&min_p=0&unique=1&exclude=1&"
               "exclude_training=1",
    "/score": "names=emma&name=liam",
}


def notice(html: str) -> str | None:
    found = re.search(r'<p class="note" role="status" id="notice">([^<]*)</p>', html)
    return found and found.group(1)


@pytest.mark.parametrize("path", PAGES)
def test_a_parameter_a_page_does_not_read_is_named(client, path):
    known = PAGES[path]
    r = client.get(f"{path}?{known}&colour=red" if known else f"{path}?colour=red")
    assert r.status_code == 200, r.text
    said = notice(r.text)
    assert said and said.startswith("Ignored &#39;colour&#39;: not a parameter of this page; "
                                    "it reads "), said
    for name in {k.split("=")[0] for k in known.split("&") if k}:
        assert name in said.split("it reads ", 1)[1]  # every parameter it reads is listed


@pytest.mark.parametrize("path", PAGES)
def test_the_parameters_a_page_reads_raise_no_notice(client, path):
    known = PAGES[path]
    r = client.get(f"{path}?{known}" if known else path)
    assert r.status_code == 200 and notice(r.text) is None and "Ignored" not in r.text


def test_an_error_page_of_a_route_names_it_too(client):
    r = client.get("/bigram?model=nope&colour=red")
    assert r.status_code == 404 and "Ignored &#39;colour&#39;" in r.text


def test_the_score_page_takes_the_apis_name_repeated(client):
    """/score?name=emma is the API's GET spelling (GET /api/models/{model}/score?name=)."""
    html = client.get("/score?name=emma&name=liam").text
    assert ">emma<" in html and ">liam<" in html and notice(html) is None
    assert "emma\nliam" in html  # in the form, one per line, for the next edit
