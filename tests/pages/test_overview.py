"""The overview page, through TestClient."""

from __future__ import annotations

import re

from app.lm import KINDS


def test_one_card_per_model_with_ten_samples_and_links(client):
    r = client.get("/")
    assert r.status_code == 200
    cards = re.findall(r'<article class="card".*?</article>', r.text, re.S)
    assert len(cards) == len(KINDS)  # conftest: one model per kind
    order = [m.name for m in client.app.state.registry.ordered()]  # tests/pages/test_defaults.py
    for card, name in zip(cards, order, strict=True):
        assert f'href="/models/{name}"' in card
        samples = re.search(r'<ol class="samples">(.*?)</ol>', card, re.S).group(1)
        assert samples.count("<li>") == 10
        assert "train" in card and "val" in card and "test" in card
        assert re.search(r"seed \d+: <a href=\"/sample\?model=", card)
    card = dict(zip(order, cards, strict=True))
    assert 'href="/bigram?model=bigram"' in card["bigram"]
    assert 'href="/embeddings?model=mlp"' in card["mlp"]
    assert "/embeddings?model=bigram" not in card["bigram"]


def test_every_page_has_the_navigation(client):
    for url in ["/", "/bigram", "/bigram/compare", "/embeddings", "/sample", "/score",
                "/models/mlp", "/nope"]:
        html = client.get(url).text
        nav = re.search(r'<nav aria-label="Main">.*?</nav>', html, re.S).group(0)
        for href in ['"/"', '"/bigram"', '"/bigram/compare"', '"/embeddings"', '"/sample"',
                     '"/score"']:
            assert f"href={href}" in nav, (url, href)


def test_current_page_is_marked_in_the_navigation(client):
    html = client.get("/sample").text
    assert '<a href="/sample" aria-current="page">' in html


def test_the_stylesheet_script_and_icon_are_served(client):
    for path, kind in [("/static/style.css", "text/css"), ("/static/app.js", "javascript"),
                       ("/static/favicon.svg", "image/svg")]:
        r = client.get(path)
        assert r.status_code == 200 and kind in r.headers["content-type"]


def test_no_inline_scripts_or_styles(client):
    for url in ["/", "/bigram?row=a", "/bigram/compare", "/embeddings", "/sample",
                "/score?names=emma", "/models/neural-bigram"]:
        html = client.get(url).text
        assert re.findall(r"<script(?![^>]*\bsrc=)", html) == [], url
        assert " style=" not in html and "<style" not in html and " onclick=" not in html, url


def test_element_ids_are_unique_on_every_page(client):
    # a duplicate id breaks url(#gradient) references and label/aria links
    for url in ["/", "/bigram?row=a", "/bigram/compare", "/embeddings", "/sample",
                "/score?names=emma%0Aava", "/models/neural-bigram"]:
        ids = re.findall(r'\sid="([^"]+)"', client.get(url).text)
        assert len(ids) == len(set(ids)), (url, sorted(i for i in ids if ids.count(i) > 1))


def test_every_card_gets_its_own_budget_on_a_slow_model_thread(fresh_client, slow_model_thread):
    """The issue's empty cards: the page shared one deadline, and the Transformer's and the
    WaveNet's samples came back empty on a busy machine. With every forward pass taking 0.05 s,
    a card's 10 s are 200 passes: one deadline shared by the page's cards (each needs about 33
    passes a round of draws) would leave the last ones empty; a deadline each gives every card
    room for several rounds (a name over max_len is drawn again: the tiny models' seldom are,
    and a seed drawn for the page may ask for a second round, never for six)."""
    slow_model_thread(0.05)
    html = fresh_client.get("/").text
    cards = re.findall(r'<article class="card".*?</article>', html, re.S)
    assert len(cards) == len(KINDS)
    for card in cards:
        samples = re.search(r'<ol class="samples">(.*?)</ol>', card, re.S).group(1)
        assert samples.count("<li>") == 10
    assert "time limit" not in html


def test_a_card_cut_short_by_the_time_limit_says_so(fresh_client, deadline_after):
    deadline_after(1)  # every card's deadline has passed at its first look: no names at all
    html = fresh_client.get("/").text
    assert html.count("sampling reached its time limit (") == len(KINDS)
