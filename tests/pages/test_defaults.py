"""Issue 21.1: which model each page, the home page and the API list open on
(app/store/registry.py's order), on a registry laid out like the shipped one: main models of
the default data, era models, and a model of other data, each with a validation NLL set
by the test."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.lm import KINDS
from app.main import NoModels, create_app, load_registry
from app.store.checkpoints import load_checkpoint
from app.store.registry import LoadedModel, Registry

# name: (kind, data spec, validation NLL)
LAYOUT = {
    "bigram": ("bigram", "ssa:2017", 2.4628),
    "neural-bigram": ("neural-bigram", "ssa:2017", 2.4629),
    "mlp": ("mlp", "ssa:2017", 1.97),
    "transformer": ("transformer", "ssa:2017", 1.93),
    "wavenet": ("wavenet", "ssa:2017", None),  # trained without a validation split
    "bigram-1950s": ("bigram", "ssa:1950-1959", 2.37),  # better NLLs than the main models':
    "bigram-2010s": ("bigram", "ssa:2010-2017", 2.45),  # eras still come after them
    "bigram-1880s": ("bigram", "ssa:1880-1889", 2.41),
    "mine": ("mlp", "mine.txt", 1.50),  # other data: last, however good
}
# The documented order, written out: main models best first (no NLL after), eras earliest first,
# then the rest.
ORDER = ["transformer", "mlp", "bigram", "neural-bigram", "wavenet",
         "bigram-1880s", "bigram-1950s", "bigram-2010s", "mine"]


def laid_out(models_dir: Path, names=LAYOUT, default: str | None = None) -> Registry:
    """The tiny checkpoints under LAYOUT's names, data specs and validation NLLs, added in
    reverse name order (the registry's order must not depend on the order of loading)."""
    reg = Registry(default=default)
    for name in sorted(names, reverse=True):
        kind, spec, nll = LAYOUT[name]
        ck = load_checkpoint(models_dir / f"{kind}.safetensors")
        meta = ck.meta.model_copy(update={
            "dataset": ck.meta.dataset.model_copy(update={"spec": spec}),
            "metrics": ck.meta.metrics.model_copy(update={"val_nll": nll})})
        reg.add(dataclasses.replace(ck, path=Path(f"{name}.safetensors"), meta=meta))
    return reg


def serving(settings: Settings, registry: Registry):
    client = TestClient(create_app(settings))
    client.__enter__()
    client.app.state.registry = registry
    return client


@pytest.fixture(scope="module")
def shipped_like(settings, models_dir):
    c = serving(settings, laid_out(models_dir))
    yield c
    c.__exit__(None, None, None)


def selected(html: str, field: str = "model") -> list[str]:
    """The chosen option of each <select name=field>."""
    return [re.search(r'<option value="([^"]+)" selected', s).group(1) for s in
            re.findall(rf'<select name="{field}".*?</select>', html, re.S)]


def cards(html: str) -> list[str]:
    return re.findall(r'<h2 id="card-\d+"><a [^>]*>([^<]+)</a>', html)


def test_the_order_is_main_models_best_first_then_eras_earliest_first_then_the_rest(
        shipped_like):
    assert [m.name for m in shipped_like.app.state.registry.ordered()] == ORDER


def test_the_home_page_lists_the_cards_best_first(shipped_like):
    assert cards(shipped_like.get("/").text) == ORDER


def test_the_home_page_leads_with_a_score_box_and_a_generate_button(shipped_like):
    html = shipped_like.get("/").text
    score = html.index('<form class="controls" id="start-score" method="get" action="/score">')
    sample = html.index('<form class="controls" id="start-sample" method="get" action="/sample">')
    assert max(score, sample) < html.index('<article class="card"')
    form = html[score:html.index("</form>", score)]
    assert re.search(r'<input type="text" name="names"', form)
    form = html[sample:html.index("</form>", sample)]
    assert '<input type="hidden" name="model" value="transformer">' in form  # the best neural
    assert "Generate names</button>" in form
    # what the two forms send gives what they say
    assert ">emma<" in shipped_like.get("/score?names=emma").text
    assert selected(shipped_like.get("/sample?model=transformer").text) == ["transformer"]


@pytest.mark.parametrize(("url", "want"), [
    ("/bigram", ["bigram"]),  # the main data's first model with a table, not bigram-1880s
    ("/sample", ["transformer"]),  # the best neural model
    ("/bigram/compare", ["bigram-1880s", "bigram-2010s"]),  # the earliest era, the latest
])
def test_each_page_opens_on_the_orders_model(shipped_like, url, want):
    r = shipped_like.get(url)
    assert r.status_code == 200 and selected(r.text, "model" if "compare" not in url
                                             else "[ab]") == want


def test_the_next_letter_page_and_the_embeddings_open_on_the_first_model_that_fits(
        shipped_like):
    assert 'value="transformer" selected' in shipped_like.get("/next").text
    first = next(n for n in ORDER if KINDS[LAYOUT[n][0]].has_embeddings)  # none is 2-D here
    assert selected(shipped_like.get("/embeddings").text) == [first]


def test_the_compare_page_fills_the_blank_side_with_another_model(shipped_like):
    assert selected(shipped_like.get("/bigram/compare?a=bigram-2010s").text, "[ab]") == \
        ["bigram-2010s", "bigram-1880s"]
    assert selected(shipped_like.get("/bigram/compare?b=bigram").text, "[ab]") == \
        ["bigram-1880s", "bigram"]


def test_without_eras_the_compare_page_takes_the_first_two_tables(settings, models_dir):
    c = serving(settings, laid_out(models_dir, ["bigram", "neural-bigram", "mlp"]))
    try:
        assert selected(c.get("/bigram/compare").text, "[ab]") == ["bigram", "neural-bigram"]
    finally:
        c.__exit__(None, None, None)


def test_with_one_bigram_table_the_compare_page_says_so_instead_of_a_self_comparison(
        settings, models_dir):
    c = serving(settings, laid_out(models_dir, ["bigram", "mlp", "transformer"]))
    try:
        for url in ["/bigram/compare", "/bigram/compare?a=bigram", "/bigram/compare?b=bigram"]:
            r = c.get(url)
            assert r.status_code == 200 and "Only one bigram model is loaded" in r.text, url
            assert 'id="heat-a"' not in r.text and 'data-pair=' not in r.text, url
    finally:
        c.__exit__(None, None, None)


def test_the_default_model_setting_goes_first_for_every_page_that_can_use_it(
        settings, models_dir):
    s = settings.model_copy(update={"default_model": "mlp"})
    c = serving(s, laid_out(models_dir, default="mlp"))
    try:
        assert cards(c.get("/").text)[:2] == ["mlp", "transformer"]
        assert selected(c.get("/sample").text) == ["mlp"]
        assert 'value="mlp" selected' in c.get("/next").text
        assert selected(c.get("/embeddings").text) == ["mlp"]
        assert selected(c.get("/bigram").text) == ["bigram"]  # mlp has no table: the next
    finally:
        c.__exit__(None, None, None)


def test_a_counting_default_model_is_sampled_from_too(settings, models_dir):
    """The setting names what sampling opens on as well: the best neural model is only the
    default's default."""
    s = settings.model_copy(update={"default_model": "bigram"})
    c = serving(s, laid_out(models_dir, default="bigram"))
    try:
        assert selected(c.get("/sample").text) == ["bigram"]
        assert 'name="model" value="bigram"' in c.get("/").text  # the generate button
    finally:
        c.__exit__(None, None, None)


def test_the_setting_is_read_from_the_environment_and_loads_that_model_first(
        monkeypatch, models_dir):
    monkeypatch.setenv("NAMELAB_DEFAULT_MODEL", "wavenet")
    s = Settings(models_dir=models_dir)
    assert s.default_model == "wavenet"
    assert load_registry(s).first().name == "wavenet"
    monkeypatch.setenv("NAMELAB_DEFAULT_MODEL", " ")
    assert Settings(models_dir=models_dir).default_model is None


def test_a_default_model_that_is_not_loaded_stops_start_up_naming_it(models_dir):
    with pytest.raises(NoModels, match=r"NAMELAB_DEFAULT_MODEL: unknown model 'nope'; "
                                       r"available models: .*transformer"):
        load_registry(Settings(models_dir=models_dir, default_model="nope"))


def test_sampling_falls_back_to_a_count_model_only_when_nothing_else_is_loaded(models_dir):
    reg = laid_out(models_dir, ["bigram", "bigram-1880s"])
    assert reg.sampler().name == "bigram"
    assert isinstance(reg.sampler(), LoadedModel)
