"""The next-letter page, the model card's attention and hidden layers, the embedding page's
search box, and the links into /next from the score and sample pages (TestClient)."""

from __future__ import annotations

import html as htmllib
import math
import re
from urllib.parse import parse_qs, urlsplit

import pytest
import torch

from app.lm import KINDS
from app.lm.inspect import window
from app.lm.sampling import Knobs, filtered
from app.serving import worker
from tests.pages.oracle import bigram_prob


@pytest.fixture
def loaded(client):
    return client.app.state.registry.get


BAR = re.compile(r'<g class="bar( cut)?" data-symbol="([^"]+)"><title>([^<]*)</title>')


def columns(html: str) -> list[str]:
    return re.findall(r'<section class="next-model".*?</section>', html, re.S)


def bar_links(section: str) -> dict[str, str]:
    """symbol -> the href of its bar."""
    out = {}
    for href, symbol in re.findall(r'<a class="bar-link" href="([^"]+)"[^>]*>\s*<g class="bar'
                                   r'(?: cut)?" data-symbol="([^"]+)"', section):
        out[symbol] = htmllib.unescape(href)
    return out


def test_the_bars_are_the_bigrams_counts_sorted_and_link_one_letter_on(client):
    r = client.get("/next", params={"model": "bigram", "prefix": "em"})
    assert r.status_code == 200
    (col,) = columns(r.text)
    bars = BAR.findall(col)
    assert len(bars) == 27 and not any(cut for cut, _, _ in bars)  # no knobs: nothing cut
    probs = [float(re.search(r"P = ([0-9.e-]+)", t).group(1)) for _, _, t in bars]
    assert probs == sorted(probs, reverse=True)
    for (_, symbol, _), p in zip(bars, probs, strict=True):
        char = "." if symbol == "end" else symbol
        assert math.isclose(p, bigram_prob("m", char), rel_tol=2e-3, abs_tol=1e-4), symbol
    links = bar_links(col)
    q = parse_qs(urlsplit(links["a"]).query)
    assert urlsplit(links["a"]).path == "/next" and q == {"model": ["bigram"], "prefix": ["ema"]}
    assert links["end"] == "/score?names=em"  # the end: the name's score
    assert "one letter back" in r.text and 'href="/next?model=bigram&amp;prefix=e"' in r.text


def test_the_prefix_steps_are_the_score_pages_and_the_top_names_come_with_it(client):
    html = client.get("/next", params={"model": "bigram", "prefix": "em"}).text
    want = math.log(bigram_prob(".", "e")) + math.log(bigram_prob("e", "m"))
    assert f"<dd>{want:.3f}</dd>" in html and f"<dd>{-want / 2:.3f}</dd>" in html
    top = re.search(r'<ol class="top-names">(.*?)</ol>', html, re.S).group(1)
    names = re.findall(r">([a-z]+)</a>", top)
    assert len(names) == 5 and all(n.startswith("em") for n in names)
    assert re.search(r"greedy</dt><dd><a class=\"name\"[^>]*>em[a-z]*</a>", html)


def test_the_knobs_cut_bars_and_keep_themselves_in_the_links(client):
    html = client.get("/next", params={"model": "mlp", "prefix": "a", "top_k": "4",
                                       "temperature": "0.5"}).text
    (col,) = columns(html)
    bars = BAR.findall(col)
    kept = [s for cut, s, _ in bars if not cut]
    assert len(kept) == 4 and kept == [s for _, s, _ in bars[:4]]
    assert all("cut by the sampling knobs" in t for cut, _, t in bars if cut)
    links = bar_links(col)
    assert set(links) == set(kept)  # a cut letter cannot be drawn: no link
    q = parse_qs(urlsplit(links[kept[0]]).query)
    assert q["top_k"] == ["4"] and q["temperature"] == ["0.5"]


def test_an_empty_prefix_cannot_end(client):
    (col,) = columns(client.get("/next", params={"model": "mlp"}).text)
    assert ("cut", "end") in {(("cut" if cut else ""), s) for cut, s, _ in BAR.findall(col)}


def test_up_to_three_models_side_by_side_and_the_links_keep_them(client):
    html = client.get("/next?model=mlp&model=transformer&model=bigram&prefix=j").text
    cols = columns(html)
    assert len(cols) == 3
    q = parse_qs(urlsplit(bar_links(cols[1])["a"]).query)
    assert q["model"] == ["mlp", "transformer", "bigram"] and q["prefix"] == ["ja"]
    r = client.get("/next?model=mlp&model=transformer&model=bigram&model=wavenet")
    assert r.status_code == 422 and "at most 3" in r.text


@pytest.mark.parametrize(("query", "words"), [
    ("model=mlp&prefix=e1", "alphabet"),
    ("model=mlp&top_k=99", "27"),
    ("model=mlp&temperature=0", "temperature"),
    ("model=nope", "no model called"),
    ("model=mlp&prefix=" + "a" * 65, "64"),
])
def test_bad_input_is_an_error_in_the_page(client, query, words):
    r = client.get("/next?" + query)
    assert r.status_code in (404, 422)
    assert 'role="alert"' in r.text and words in htmllib.unescape(r.text)


def test_the_score_pages_steps_and_the_sampled_names_link_here(client):
    html = htmllib.unescape(client.get("/score", params={"names": "ava"}).text)
    for model in KINDS:
        for before in ["", "a", "av", "ava"]:
            want = f"/next?model={model}" + (f"&prefix={before}" if before else "")
            assert f'href="{want}"' in html, want
    html = htmllib.unescape(client.get("/sample?model=mlp&n=4&seed=3").text)
    names = re.findall(r'<td class="name"><a [^>]*>([a-z]+)</a>', html)
    assert len(names) == 4
    for name in names:
        assert f'href="/next?model=mlp&prefix={name}"' in html


def test_the_transformers_card_draws_a_heatmap_per_layer_and_head(client, loaded):
    cfg = loaded("transformer").model.cfg
    html = client.get("/models/transformer", params={"name": "Ava"}).text
    maps = re.findall(r'<svg class="heatmap attention".*?</svg>', html, re.S)
    assert len(maps) == cfg.n_layer * (cfg.n_head + 1)  # every head and their average
    for svg in maps:
        cells = re.findall(r'<g class="cell( masked)?"', svg)
        assert len(cells) == 16 and sum(1 for c in cells if c) == 6  # 4x4, 6 above the diagonal
    weights = [float(w) for w in re.findall(r'class="value"[^>]*>([0-9.]+)<', maps[0])]
    assert len(weights) == 10 and math.isclose(weights[0], 1.0)  # the start sees only itself
    assert 'value="Ava"' in html and "<strong>ava</strong>" in html


def test_the_card_says_when_the_name_cannot_be_read(client, loaded):
    block = loaded("transformer").model.block_size
    html = htmllib.unescape(client.get("/models/transformer",
                                       params={"name": "a" * block}).text)
    assert f"at most {block - 1} letters" in html and 'role="alert"' in html
    assert "Hidden layers' health" in html  # the rest of the card is still there


@pytest.mark.parametrize("model", [m for m in KINDS if not KINDS[m].has_attention])
def test_cards_without_attention_say_so_and_name_the_kinds_that_have_it(client, model):
    html = htmllib.unescape(client.get(f"/models/{model}").text)
    section = re.search(r'<section[^>]*id="attention">(.*?)</section>', html, re.S).group(1)
    assert "This kind has no attention" in section and "<svg" not in section
    have = [k for k in KINDS if KINDS[k].has_attention]
    assert have and f"The kinds that have attention: {', '.join(have)}." in " ".join(
        section.split())
    assert ("Hidden layers' health" in html) == (model in ("mlp", "wavenet", "conditional"))


def test_the_mlp_card_shows_each_layers_numbers(client):
    html = htmllib.unescape(client.get("/models/mlp").text)
    assert len(re.findall(r'<svg class="histogram"', html)) == 1  # the tiny MLP: one layer
    assert "validation names the model never trained on" in html
    h = client.get("/api/models/mlp").json()["hidden_layers"]["layers"][0]
    assert f"{100 * h['saturated']:.1f}% of the activations" in html
    assert f"{len(h['dead'])} of {h['units']}" in html


def test_the_embedding_search_rings_a_letter_and_its_neighbours(client):
    html = client.get("/embeddings", params={"model": "mlp", "letter": "E"}).text
    near = client.get("/api/models/mlp/embeddings").json()["neighbours"]["e"]
    assert re.search(r'<g class="point vowel found" data-label="e">', html)
    for n in near:
        assert re.search(rf'<g class="point \w+ near" data-label="{re.escape(n["label"])}">',
                         html)
    assert html.count(" near\" data-label") == len(near)
    kept = client.get("/api/models/mlp/embeddings").json()["projection"]["explained_variance"]
    assert f"keeps <strong>{100 * sum(kept):.1f}%</strong>" in html
    r = client.get("/embeddings", params={"model": "mlp", "letter": "ab"})
    assert r.status_code == 422 and 'role="alert"' in r.text


def filter_keeps(model, prefix: str, knobs) -> set[str]:
    """The symbols the sampler's own filter (app/lm/sampling.py `filtered`) keeps after the
    prefix, as the bars label them."""
    with torch.no_grad():
        logits = model(window(model, prefix))[0].float()
    kept = filtered(logits, knobs, first=not prefix)[0] > -math.inf
    return {"end" if i == 0 else model.vocab.itos[i] for i in kept.nonzero().flatten().tolist()}


@pytest.mark.parametrize("model", ["bigram", "mlp", "transformer"])
def test_top_p_and_min_p_keep_what_the_samplers_filter_keeps(client, loaded, model):
    html = client.get("/next", params={"model": model, "prefix": "el", "temperature": "0.7",
                                       "top_p": "0.61", "min_p": "0.137"}).text
    (col,) = columns(html)
    kept = {s for cut, s, _ in BAR.findall(col) if not cut}
    want = filter_keeps(loaded(model).model, "el", Knobs(0.7, None, 0.61, 0.137))
    assert kept == want and 0 < len(kept) < 27
    q = parse_qs(urlsplit(bar_links(col)[min(kept - {"end"})]).query)
    assert q["top_p"] == ["0.61"] and q["min_p"] == ["0.137"] and q["temperature"] == ["0.7"]


def test_the_constraints_cut_what_cannot_fit_and_the_page_says_what_the_bars_are(client):
    html = client.get("/next?model=bigram&model=mlp&prefix=el&suffix=a&max_len=3").text
    bigram, mlp = columns(html)
    for col in (bigram, mlp):  # only 'ela' fits: every other letter and the end are cut
        bars = BAR.findall(col)
        assert [s for cut, s, _ in bars if not cut] == ["a"]
        assert all("no name going on with it fits" in t for cut, s, t in bars if cut)
        assert set(bar_links(col)) == {"a"}
        assert parse_qs(urlsplit(bar_links(col)["a"]).query)["suffix"] == ["a"]
        assert re.search(r'<ol class="top-names">\s*<li><a [^>]*>ela</a>', col)
    assert "exactly what sampling draws this letter from" in bigram
    assert "not the exact conditional" in htmllib.unescape(mlp)
    r = client.get("/next?model=mlp&prefix=el&suffix=1")
    assert r.status_code == 422 and "suffix" in htmllib.unescape(r.text)


def test_the_page_names_the_parameters_it_does_not_apply(client):
    html = htmllib.unescape(client.get("/next?model=mlp&prefix=e&n=5&seed=3&colour=red").text)
    notice = " ".join(re.findall(r'<p class="note" role="status"[^>]*>(.*?)</p>', html, re.S))
    assert "Not applied: 'n', 'seed'" in notice and "Ignored 'colour'" in notice
    assert "suffix" in notice  # what it does read
    ignored = re.search(r"Ignored 'colour'[^.]*\.", notice).group(0)
    assert "seed" not in ignored  # not listed as read: it is named as not applied
    assert 'class="note" role="status"' not in client.get("/next?model=mlp&suffix=a").text


def test_the_overviews_and_the_sample_pages_names_link_here_with_their_knobs(client):
    html = htmllib.unescape(client.get("/").text)
    samples = re.findall(r'<ol class="samples">(.*?)</ol>', html, re.S)
    assert samples and all(re.search(r'<li><a href="/next\?model=[^&"]+&prefix=[a-z]+"', s)
                           for s in samples)
    html = htmllib.unescape(client.get("/sample?model=mlp&n=3&seed=3&temperature=0.8&top_k=9"
                                       "&top_p=0.9&min_p=0.01&max_len=12").text)
    names = re.findall(r'<td class="name"><a [^>]*>([a-z]+)</a>', html)
    assert len(names) == 3
    for name in names:
        assert (f'href="/next?model=mlp&prefix={name}&temperature=0.8&top_k=9&top_p=0.9'
                f'&min_p=0.01&max_len=12"') in html


def test_the_page_is_kept_unless_its_search_timed_out(fresh_client, deadline_after,
                                                      monkeypatch):
    url = "/next?model=mlp&prefix=q"
    real = worker.request_deadline
    deadline_after(2)
    cut = fresh_client.get(url)
    assert cut.status_code == 200 and "time limit" in cut.text
    assert cut.headers["cache-control"] == "no-store" and "etag" not in cut.headers
    monkeypatch.setattr(worker, "request_deadline", real)
    full = fresh_client.get(url)  # not kept: searched again, in full this time
    assert "time limit" not in full.text and full.headers["cache-control"] == "no-cache"
    again = fresh_client.get(url, headers={"If-None-Match": full.headers["etag"]})
    assert again.status_code == 304  # kept


def test_the_card_names_the_parameters_it_does_not_apply(client):
    html = htmllib.unescape(client.get("/models/mlp?temperature=0.5&top_k=3").text)
    assert re.search(r'role="status"[^>]*>Not applied: \'temperature\', \'top_k\'', html)
    html = htmllib.unescape(client.get("/models/mlp?colour=red").text)
    assert "Ignored 'colour'" in html
    assert 'class="note" role="status"' not in client.get("/models/transformer?name=ava").text


def test_a_conditional_model_shows_the_step_under_two_decades_side_by_side(client):
    r = client.get("/next", params={"model": ["conditional", "mlp"], "prefix": "ma",
                                    "decade": "1920", "sex": "F", "vs_decade": "2000"})
    assert r.status_code == 200
    heads = re.findall(r'<h2 id="next-\d+"><a [^>]*>(.*?)</a></h2>', r.text)
    assert heads == ["conditional, the 1920s, girls", "conditional, the 2000s, girls",
                     "mlp, the 1920s, girls", "mlp, the 2000s, girls"]
    errors = re.findall(r'<p class="error-inline">(.*?)</p>', r.text)
    assert len(errors) == 2 and all("kind conditional" in htmllib.unescape(e) for e in errors)
    assert r.text.count('<svg class="next-bars"') == 2
