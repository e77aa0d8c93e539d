"""The heatmap page, the row distribution, the downloads and the comparison, through TestClient."""

from __future__ import annotations

import csv
import io
import math
import re
from html import escape as html_escape

import pytest

from app.pages.bigram import MIN_COUNT, Table, compare_tables
from tests.conftest import forget_pages
from tests.pages.oracle import bigram_prob, pair_count, tooltip

LETTERS = ".abcdefghijklmnopqrstuvwxyz"


def cells(html: str) -> list[str]:
    return re.findall(r'<g class="cell[^"]*" data-pair="([^"]+)"', html)


def test_heatmap_defaults_to_the_first_bigram_model_with_729_cells(client):
    r = client.get("/bigram")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert 'value="bigram" selected' in r.text
    pairs = cells(r.text)
    assert len(pairs) == 729
    assert pairs[0] == ".." and pairs[1] == ".a" and pairs[27] == "a."  # '.' first, row-major


def test_heatmap_cells_show_pair_value_and_tooltip(client):
    html = client.get("/bigram?model=bigram&view=probs").text
    p = bigram_prob("e", "m")
    cell = re.search(r'data-pair="em"[^>]*><title>([^<]*)</title>.*?</g>', html).group(0)
    assert f"<title>{html_escape(tooltip('e', 'm'))}</title>" in cell  # '>' is escaped
    assert ">em</text>" in cell and f">{p:.3f}</text>" in cell


def test_counts_view_prints_counts(client):
    html = client.get("/bigram?model=bigram&view=counts").text
    count, _ = pair_count("a", "n")
    cell = re.search(r'data-pair="an"[^>]*>.*?</g>', html).group(0)
    assert f">{count}</text>" in cell
    assert "count of the pair" in html  # the legend's title


def test_logprobs_view(client):
    html = client.get("/bigram?model=bigram&view=logprobs").text
    cell = re.search(r'data-pair="an"[^>]*>.*?</g>', html).group(0)
    assert f">{math.log(bigram_prob('a', 'n')):.2f}</text>" in cell


def test_row_distribution_is_sorted(client):
    html = client.get("/bigram?model=bigram&row=e").text
    bars = re.search(r'<svg class="bars" id="row-bars".*?</svg>', html, re.S).group(0)
    labels = re.findall(r'<text class="bar-label"[^>]*>([^<]*)</text>', bars)
    assert sorted(labels) == sorted(LETTERS)
    probs = [bigram_prob("e", b) for b in labels]
    assert probs == sorted(probs, reverse=True)


def test_row_links_on_the_heatmap(client):
    html = client.get("/bigram?model=bigram&view=counts").text
    assert 'href="/bigram?model=bigram&amp;view=counts&amp;row=q#row"' in html


def test_neural_bigram_renders_without_counts(client):
    r = client.get("/bigram?model=neural-bigram&view=counts")
    assert r.status_code == 200
    assert "has no counts" in r.text and "Showing probabilities instead" in r.text
    assert r.text.count("has no counts") == 1  # the notice, once
    assert len(cells(r.text)) == 729
    assert ", count" not in re.search(r'data-pair="em"[^>]*><title>([^<]*)<', r.text).group(1)
    assert re.search(r'value="counts" disabled', r.text)


@pytest.mark.parametrize("url, status, message", [
    ("/bigram?model=nope", 404, "There is no model called"),
    ("/bigram?model=mlp", 409, "has no bigram table"),
    ("/bigram?view=pie", 422, "view must be one of probs, counts, logprobs"),
    ("/bigram?row=%C3%A9", 422, "row must be one of"),
])
def test_heatmap_errors_are_friendly(client, url, status, message):
    r = client.get(url)
    assert r.status_code == status
    assert message in r.text and 'role="alert"' in r.text
    assert "Traceback" not in r.text


def test_csv_download_matches_counts_by_hand(client):
    r = client.get("/bigram/table.csv?model=bigram")
    assert r.headers["content-type"].startswith("text/csv")
    assert 'filename="bigram.csv"' in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == 729
    em = next(x for x in rows if x["current"] == "e" and x["next"] == "m")
    assert int(em["count"]) == pair_count("e", "m")[0]
    assert float(em["prob"]) == pytest.approx(bigram_prob("e", "m"), rel=1e-6)


def test_json_download(client):
    data = client.get("/bigram/table.json?model=neural-bigram").json()
    assert data["labels"] == list(LETTERS) and data["counts"] is None
    assert all(sum(row) == pytest.approx(1, abs=1e-5) for row in data["probs"])
    assert client.get("/bigram/table.json?model=mlp").status_code == 409


def test_compare_page_defaults_and_shows_both_models(client):
    r = client.get("/bigram/compare")
    assert r.status_code == 200
    assert 'id="heat-a"' in r.text and 'id="heat-b"' in r.text
    assert len(cells(r.text)) == 3 * 729  # two small tables and the difference
    assert "log P(neural-bigram) − log P(bigram)" in r.text


def test_compare_difference_is_the_log_ratio(client):
    registry = client.app.state.registry
    a, b = Table.of(registry.get("bigram")), Table.of(registry.get("neural-bigram"))
    cmp = compare_tables(a, b)
    i, j = a.labels.index("e"), a.labels.index("m")
    cell = next(c for c in cmp.heat.cells if c.pair == "em")
    assert cell.value_text == f"{math.log(b.probs[i][j]) - math.log(a.probs[i][j]):+.2f}"
    assert all(x.log_ratio >= y.log_ratio for x, y in zip(cmp.rises, cmp.rises[1:],
                                                            strict=False))
    assert cmp.heat.legend.ticks[0].text.startswith("-")  # symmetric diverging scale


def test_the_most_changed_pairs_need_evidence_and_show_their_counts(client, monkeypatch):
    """Issue 21: pairs never seen in either model's data were listed (smoothing noise). With
    a counted model, a listed pair is seen MIN_COUNT times in one of them; its counts shown.
    (The tiny data has no pair seen MIN_COUNT times: the page says so; the rule is checked
    with a bar of 3.)"""
    html = client.get("/bigram/compare?a=bigram&b=neural-bigram").text
    assert f"No pair is seen {MIN_COUNT} times in either model's data." in html
    monkeypatch.setattr("app.pages.bigram.MIN_COUNT", 3)
    forget_pages(client.app)
    registry = client.app.state.registry
    a, b = Table.of(registry.get("bigram")), Table.of(registry.get("neural-bigram"))
    cmp = compare_tables(a, b)
    assert cmp.by_counts and cmp.rises and cmp.falls
    for c in cmp.rises + cmp.falls:
        i, j = a.labels.index(c.pair[0]), a.labels.index(c.pair[1])
        assert c.count_a == a.counts[i][j] >= 3 and c.count_b is None
    seen = [(i, j) for i in range(27) for j in range(27) if a.counts[i][j] >= 3]
    assert len(cmp.rises) == min(8, len(seen))
    html = client.get("/bigram/compare?a=bigram&b=neural-bigram").text
    forget_pages(client.app)  # the next test sees the page of the real bar
    assert "pairs seen at least 3 times" in html
    c = cmp.falls[0]
    assert re.search(rf"<code>{re.escape(c.pair)}</code>(?:(?!</tr>).)*<td class=\"count\">"
                     rf"{c.count_a:,}</td><td class=\"count\">—</td>", html, re.S)


def test_compare_with_a_model_without_a_table(client):
    r = client.get("/bigram/compare?a=bigram&b=mlp")
    assert r.status_code == 409 and "has no bigram table" in r.text


@pytest.mark.parametrize("name", ["名前", 'a"b', "new\nline", "cr\rlf", "x\x00"])
@pytest.mark.parametrize("download", ["table.csv", "table.json"])
def test_a_download_of_an_odd_model_name_is_an_html_404(client, name, download):
    """A model name reaches a Content-Disposition header only if it is a loaded model's, and
    those are safe identifiers (the registry refuses other file names)."""
    r = client.get(f"/bigram/{download}", params={"model": name})
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    assert "content-disposition" not in r.headers


def test_the_row_chart_shows_counts_in_the_counts_view_and_count_0_for_unseen_pairs(client):
    r = client.get("/bigram?model=bigram&view=counts&row=q")
    bars = re.search(r'<svg class="bars".*?</svg>', r.text, re.S).group(0)
    # 'quinn' is the only q in the tiny data: q -> u once, every other pair never
    assert '<text class="bar-value"' in bars and ">1</text>" in bars
    assert "count of &#39;q&#39; followed by the letter" in bars
    r = client.get("/bigram?model=bigram&view=probs&row=q")
    assert r.text.count("(count 0)") == 26


def test_the_model_dropdown_names_each_model_once(client):
    html = client.get("/bigram").text
    assert ">bigram</option>" in html and "(bigram)" not in html
