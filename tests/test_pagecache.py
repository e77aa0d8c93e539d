"""Pages that never change are rendered once per set of loaded models, with ETag and 304."""

from __future__ import annotations

import itertools

import pytest
from fastapi.testclient import TestClient

from app.lm.bigram import BigramConfig
from app.main import create_app
from app.serving import batching, worker
from app.serving.pagecache import Page, PageCache, cacheable_paths, etag_of, matches
from app.serving.routes import flat_routes
from app.store.registry import Registry
from app.store.training import train_to_checkpoint

CACHED = ["/bigram?model=bigram", "/bigram?model=bigram&view=counts&row=e",
          "/bigram/table.csv?model=bigram", "/bigram/table.json?model=neural-bigram",
          "/bigram/compare?a=bigram&b=neural-bigram", "/embeddings?model=mlp",
          "/api/models", "/api/models/mlp", "/api/models/bigram/bigram",
          "/api/models/mlp/embeddings?k=2"]
NOT_CACHED = ["/", "/sample?model=mlp&n=3", "/sample?model=mlp&n=3&seed=1",
              "/api/models/mlp/top?k=3", "/models/mlp",  # bounded by a deadline: can vary
              "/api/models/mlp/sample?n=2",
              "/bigram?model=bigram&view=nope", "/models/nope", "/api/models/mlp/bigram"]


@pytest.fixture
def fresh(settings):
    """A new app (an empty cache) and a count of the calls that reach the model thread."""
    calls = []
    run = worker.run

    async def counting_run(fn, /, *args, **kwargs):
        calls.append(fn)
        return await run(fn, *args, **kwargs)

    def counting(submit):
        async def counted(m, item):
            calls.append(item)
            return await submit(m, item)
        return counted

    with TestClient(create_app(settings)) as c:
        mp = pytest.MonkeyPatch()
        mp.setattr(worker, "run", counting_run)
        for b in (batching.scoring, batching.sampling):  # model work that skips worker.run
            mp.setattr(b, "submit", counting(b.submit))
        try:
            yield c, calls
        finally:
            mp.undo()


@pytest.mark.parametrize("url", CACHED)
def test_a_page_that_never_changes_is_rendered_once(fresh, url):
    c, calls = fresh
    first = c.get(url)
    assert first.status_code == 200 and len(calls) == 1
    again = c.get(url)
    assert len(calls) == 1  # served without running the route
    assert again.content == first.content
    assert again.headers["content-type"] == first.headers["content-type"]
    assert again.headers["etag"] == first.headers["etag"] == etag_of(first.content).decode()
    assert again.headers["cache-control"] == "no-cache"
    assert "content-security-policy" in again.headers  # the middleware outside still applies


@pytest.mark.parametrize("url", ["/score?names=emma%0Axqzvk", "/api/compare?name=emma",
                                 "/api/models/mlp/score?name=emma",
                                 "/score?name=emma",  # a parameter the route marks as read
                                 "/next?model=mlp&prefix=em"])
def test_scores_are_computed_once_per_url(fresh, url):
    """A name's scores under the loaded models never change while they are loaded: the score
    page and the score APIs read by GET are kept like the other pages (POST is not)."""
    c, calls = fresh
    first = c.get(url)
    once = len(calls)
    assert first.status_code == 200 and once >= 1
    again = c.get(url, headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and len(calls) == once
    assert c.get(url).content == first.content and len(calls) == once
    c.post("/api/models/mlp/score", json={"names": ["emma"]})
    c.post("/api/models/mlp/score", json={"names": ["emma"]})
    assert len(calls) == once + 2
    for bad in ("/score?names=b4d", "/api/compare?name=b4d"):  # 422: never kept
        assert c.get(bad).status_code == 422 and "etag" not in c.get(bad).headers


@pytest.mark.parametrize("url", NOT_CACHED)
def test_random_personal_and_failed_answers_are_not_cached(fresh, url):
    c, calls = fresh
    c.get(url)
    once = len(calls)
    c.get(url)
    assert once >= 1 and len(calls) == 2 * once  # the model work was done again
    assert "etag" not in c.get(url).headers


def test_a_conditional_request_gets_304_without_a_body(fresh):
    c, calls = fresh
    etag = c.get("/bigram?model=bigram").headers["etag"]
    r = c.get("/bigram?model=bigram", headers={"If-None-Match": etag})
    assert r.status_code == 304 and r.content == b"" and r.headers["etag"] == etag
    assert c.get("/bigram?model=bigram", headers={"If-None-Match": f'"x", W/{etag}'}
                 ).status_code == 304
    assert c.get("/bigram?model=bigram", headers={"If-None-Match": "*"}).status_code == 304
    stale = c.get("/bigram?model=bigram", headers={"If-None-Match": '"stale"'})
    assert stale.status_code == 200 and stale.headers["etag"] == etag
    # the first request for a URL (a miss) answers a matching condition with 304 too
    etag_csv = c.get("/bigram/table.csv?model=bigram").headers["etag"]
    c.app.state.registry = Registry.load_dir(c.app.state.settings.models_dir)  # empties it
    r = c.get("/bigram/table.csv?model=bigram", headers={"If-None-Match": etag_csv})
    assert r.status_code == 304 and len(calls) == 3  # rendered again, then compared


def test_new_models_empty_the_cache(fresh, settings, tiny_names_file, tmp_path):
    """Same names, other model objects: rendered again; other weights: a different page."""
    c, calls = fresh
    page = c.get("/bigram/table.json?model=bigram").json()
    c.app.state.registry = Registry.load_dir(settings.models_dir)  # same files, new objects
    assert c.get("/bigram/table.json?model=bigram").json() == page
    assert len(calls) == 2
    folder = tmp_path / "models"
    train_to_checkpoint("bigram", str(tiny_names_file), folder, "bigram",
                        config=BigramConfig(smoothing=0.0))
    c.app.state.registry = Registry.load_dir(folder)  # a bigram without smoothing
    other = c.get("/bigram/table.json?model=bigram").json()
    assert len(calls) == 3 and other["probs"] != page["probs"]
    assert other["probs"][0][0] == 0.0  # no smoothing: '..' never seen


def test_a_model_added_to_the_registry_empties_the_cache(fresh, settings):
    c, calls = fresh
    n = len(c.get("/api/models").json())
    registry = c.app.state.registry
    registry.models["mlp-again"] = registry.models["mlp"]
    assert len(c.get("/api/models").json()) == n + 1 and len(calls) == 2


def test_a_page_rendered_while_the_models_change_is_sent_but_never_kept(fresh, monkeypatch):
    """A model replaced while a page of it renders (app/serving/reloading.py): the page, made
    from the model of before, must not be kept for the requests after the change."""
    c, calls = fresh
    registry = c.app.state.registry
    run = worker.run  # the fixture's, which counts

    async def changing_run(fn, /, *args, **kwargs):
        result = await run(fn, *args, **kwargs)
        registry.models = dict(registry.models)  # a change: Registry swaps, never mutates
        return result

    monkeypatch.setattr(worker, "run", changing_run)
    first = c.get("/bigram/table.json?model=bigram")
    assert first.status_code == 200 and len(calls) == 1
    assert c.get("/bigram/table.json?model=bigram").content == first.content
    assert len(calls) == 2  # rendered again: the first was not kept


def test_the_cache_is_bounded_in_bytes_and_drops_the_least_recently_used():
    page = Page(200, [(b"content-type", b"text/plain")], b"x" * 400, etag_of(b"x" * 400))
    each = page.size(("/p0", b""))
    assert each == 3 + 400 + len(page.etag) + len(b"content-typetext/plain") + 512
    cache = PageCache(app=None, max_bytes=2 * each + 1)
    for i in range(5):
        cache._store((f"/p{i}", b""), page)
        assert cache.size <= cache.max_bytes
    assert list(cache.pages) == [("/p3", b""), ("/p4", b"")]
    cache._store(("/huge", b""), Page(200, [], b"y" * 2 * each, b'"y"'))  # never kept
    assert ("/huge", b"") not in cache.pages and cache.size == 2 * each


def test_etags_compare_weakly_and_accept_lists():
    assert matches(b'"a"', b'"a"') and matches(b'W/"a"', b'"a"') and matches(b'"b", "a"', b'"a"')
    assert matches(b"*", b'"a"') and not matches(b'"b"', b'"a"') and not matches(b"", b'"a"')


@pytest.mark.slow
def test_padding_in_the_query_never_grows_the_cache_past_its_bound_and_keys_are_counted(
        settings):
    """2,000 URLs of a cacheable table padded with 60 KB: a parameter the route does not
    declare is never kept; every byte kept, keys and headers included, counts in the bound."""
    app = create_app(settings)
    with TestClient(app) as c:
        c.get("/healthz")
        cache = cache_of(app)
        cache.max_bytes = 256 * 2**10
        pad = "x" * 60_000
        for i in range(2000):
            r = c.get(f"/bigram/table.csv?model=bigram&pad={pad}{i}")
            assert r.status_code == 200
            assert cache.size <= cache.max_bytes
        assert cache.pages == {}  # `pad` is not a parameter of the route
        names = ["".join(x) for x in itertools.product("aeiou", "lmnrs", "aeiou", "lmnrs")]
        for name in names[:300]:  # distinct pages, each kept with its key, until evicted
            assert c.get(f"/api/models/bigram/score?name={name}").status_code == 200
            assert cache.size <= cache.max_bytes
        kept = sum(len(k[0]) + len(k[1]) + len(p.body) + sum(len(a) + len(b) for a, b in
                                                              p.headers)
                   for k, p in cache.pages.items())
        assert kept < cache.size <= cache.max_bytes  # counted: keys, headers, and more
        assert 0 < len(cache.pages) < 300


def test_the_key_is_normalised_parameters_sorted(fresh):
    c, calls = fresh
    first = c.get("/api/models/mlp/next?prefix=a&top_k=3")
    again = c.get("/api/models/mlp/next?top_k=3&prefix=a")
    assert first.content == again.content and len(calls) == 1
    order = [c.get(f"/score?names={a}&names={b}").status_code for a, b in
             (("emma", "liam"), ("liam", "emma"))]
    assert order == [200, 200] and len(calls) > 1  # a repeated parameter's order is kept


def cache_of(app) -> PageCache:
    node = app.middleware_stack
    while not isinstance(node, PageCache):
        node = node.app
    return node


def test_the_urls_the_cache_may_keep_are_the_routes_marked_cacheable(client):
    """Declared on the routes (`@cacheable`), read from the app's routes: no list of paths."""
    marked = {path for path, _, r in flat_routes(client.app.router.routes)
              if getattr(getattr(r, "endpoint", None), "cacheable", False)}
    assert marked == {
        "/bigram", "/bigram/table.csv", "/bigram/table.json", "/bigram/compare", "/embeddings",
        "/score", "/next", "/api/compare", "/api/models", "/api/models/{model}",
        "/api/models/{model}/bigram", "/api/models/{model}/embeddings",
        "/api/models/{model}/score", "/api/models/{model}/next",
        "/api/models/{model}/attention"}
    patterns = cacheable_paths(client.app.router.routes)
    assert len(patterns) == len(marked)
    assert any(p.match("/api/models/mlp/next") for p in patterns)
    assert not any(p.match("/api/models/mlp/top") or p.match("/sample") for p in patterns)
