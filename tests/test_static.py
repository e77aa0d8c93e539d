"""Static files: content-hashed URLs cached for a year, validators that are content hashes."""

from __future__ import annotations

import re

from app.config import STATIC_DIR
from app.web.static import IMMUTABLE, content_hash, static_url


def test_pages_link_static_files_by_their_content_hash(client):
    html = client.get("/sample").text
    links = re.findall(r'(?:href|src)="(/static/[^"]+)"', html)
    assert sorted(links) == sorted(static_url(n) for n in ("app.js", "favicon.svg", "style.css"))
    for link in links:
        name, v = re.fullmatch(r"/static/([^?]+)\?v=([0-9a-f]{16})", link).groups()
        assert v == content_hash(STATIC_DIR / name)


def test_a_hashed_url_is_cached_for_a_year_and_others_are_revalidated(client):
    r = client.get(static_url("style.css"))
    assert r.status_code == 200 and r.headers["cache-control"] == IMMUTABLE
    assert r.content == (STATIC_DIR / "style.css").read_bytes()
    assert r.headers["etag"] == f'"{content_hash(STATIC_DIR / "style.css")}"'
    for url in ("/static/style.css", "/static/style.css?v=0123456789abcdef"):
        r = client.get(url)  # no hash, or an older file's: the current bytes, revalidated
        assert r.status_code == 200 and r.headers["cache-control"] == "no-cache"


def test_a_matching_etag_gets_304(client):
    etag = client.get("/static/app.js").headers["etag"]
    r = client.get("/static/app.js", headers={"If-None-Match": etag})
    assert r.status_code == 304 and r.content == b"" and r.headers["etag"] == etag
    assert client.get("/static/app.js", headers={"If-None-Match": '"old"'}).status_code == 200


def test_the_hash_follows_the_bytes(tmp_path):
    f = tmp_path / "x.css"
    f.write_text("a {}")
    before = content_hash(f)
    f.write_text("b {}")
    assert content_hash(f) != before
