"""The model card, through TestClient."""

from __future__ import annotations

import re
from types import SimpleNamespace

from app.pages.models import twin_verdict
from app.params import TopParams
from app.services import top_names


def test_card_of_the_mlp(client):
    r = client.get("/models/mlp")
    assert r.status_code == 200
    for text in ["n_embd", "block_size", "Training and validation loss", "Ten most probable",
                 "sha256", "polyline"]:
        assert text in r.text
    m = client.app.state.registry.get("mlp")
    top, _ = top_names(m, TopParams(k=10))[1:]
    listed = re.findall(r'<li><a href="/score\?names=[^"]*">([^<]*)</a>', r.text)
    assert listed == [t.name for t in top]


def test_counting_bigram_has_no_loss_curve(client):
    r = client.get("/models/bigram")
    assert r.status_code == 200 and "No loss curve" in r.text and "<polyline" not in r.text


def test_neural_bigram_card_compares_with_the_counting_model(client):
    r = client.get("/models/neural-bigram")
    assert r.status_code == 200
    assert "<polyline" in r.text  # its loss curve
    assert re.search(r"test NLL \d\.\d{4} vs \d\.\d{4} for bigram, the counting bigram", r.text)
    assert 'href="/bigram/compare?a=bigram&amp;b=neural-bigram"' in r.text
    assert '<g class="ref">' in r.text  # the counting model's NLL as a reference line


def meta(test_nll):
    return SimpleNamespace(name="x", meta=SimpleNamespace(metrics=SimpleNamespace(
        train_nll=test_nll, val_nll=test_nll, test_nll=test_nll)))


def test_twin_verdict_sentences():
    same = twin_verdict(meta(2.4626), meta(2.4627))
    assert same.sentence.startswith("The network learned the count table: test NLL 2.4626 vs "
                                    "2.4627")
    apart = twin_verdict(meta(2.9), meta(2.46))
    assert apart.sentence.startswith("The network has not matched the count table")


def test_unknown_model_is_an_html_404(client):
    r = client.get("/models/%3Cb%3Enope")
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    assert "There is no model called &#39;&lt;b&gt;nope&#39;" in r.text
    assert "bigram, mlp, neural-bigram" in r.text


def test_the_model_card_says_when_the_deadline_cut_the_top_names_short(client, deadline_after):
    assert "time a page may take" not in client.get("/models/mlp").text
    deadline_after(2)
    r = client.get("/models/mlp")
    assert r.status_code == 200 and "time a page may take" in r.text
