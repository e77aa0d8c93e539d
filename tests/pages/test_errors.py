"""Error pages and escaping: HTML for pages, JSON for the API, user input always shown as text."""

from __future__ import annotations


def test_unknown_page_is_an_html_404(client):
    r = client.get("/no/such/page")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("text/html")
    assert "There is no page at /no/such/page" in r.text and 'href="/"' in r.text


def test_api_paths_keep_json_errors(client):
    r = client.get("/api/no-such-thing")
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/json")
    assert r.json() == {"detail": "Not Found"}


def test_wrong_method_on_a_page_is_html(client):
    r = client.post("/sample")
    assert r.status_code == 405 and r.headers["content-type"].startswith("text/html")


def test_script_in_a_name_is_shown_as_text(client):
    attack = "<script>alert(1)</script>"
    for url, params in [("/score", {"names": attack}), ("/sample", {"prefix": attack}),
                        ("/bigram", {"model": attack}), ("/embeddings", {"x": attack}),
                        ("/bigram", {"row": attack})]:
        html = client.get(url, params=params).text
        assert attack not in html, url
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html, url


def test_no_stack_traces(client):
    for url in ["/sample?n=1e9", "/sample?temperature=inf", "/sample?seed=99999999999",
                "/score?names=" + "a" * 3000, "/embeddings?x=-1&y=0", "/bigram?view="]:
        r = client.get(url)
        assert 400 <= r.status_code < 500, url
        assert "Traceback" not in r.text and 'role="alert"' in r.text, url
