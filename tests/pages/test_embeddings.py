"""The embeddings page, through TestClient."""

from __future__ import annotations

import re

import pytest

from app.pages.common import BadInput
from app.pages.embeddings import axis_labels, chosen_dims


def points(html: str) -> list[tuple[str, str]]:
    return re.findall(r'<g class="point (\w+)" data-label="([^"]*)">', html)


def test_defaults_to_the_first_model_with_embeddings_and_pca(client):
    r = client.get("/embeddings")
    assert r.status_code == 200
    pts = points(r.text)
    assert len(pts) == 27
    kinds = dict((label, kind) for kind, label in pts)
    assert kinds["."] == "boundary" and kinds["a"] == "vowel" and kinds["b"] == "consonant"
    assert re.search(r"PC1 \(\d+\.\d% of variance\)", r.text)
    assert re.search(r"PC2 \(\d+\.\d% of variance\)", r.text)


def test_two_raw_dimensions(client):
    r = client.get("/embeddings?model=mlp&x=3&y=1")
    assert r.status_code == 200 and "dimension 3 (" in r.text and "dimension 1 (" in r.text


def test_nearest_letters_table(client):
    html = client.get("/embeddings").text
    table = re.search(r'<table class="neighbours">.*?</table>', html, re.S).group(0)
    assert table.count("<tr><th scope=\"row\">") == 27


@pytest.mark.parametrize("url, status, message", [
    ("/embeddings?model=bigram", 409, "has no embedding table"),
    ("/embeddings?model=mlp&x=0&y=9", 422, "y dimension must be between 0 and 3"),
    ("/embeddings?x=1&y=1", 422, "two different dimensions"),
    ("/embeddings?x=1", 422, "pick both dimensions"),
])
def test_errors(client, url, status, message):
    r = client.get(url)
    assert r.status_code == status and message in r.text


def test_chosen_dims():
    assert chosen_dims(None, "", 4) is None
    assert chosen_dims("0", "3", 4) == (0, 3)
    with pytest.raises(BadInput):
        chosen_dims("a", "1", 4)


def test_axis_labels_for_a_2d_table(client):
    from app.domain.services import embedding_view

    view = embedding_view(client.app.state.registry.get("mlp"), (0, 1))
    x, y = axis_labels(view)
    assert x.startswith("dimension 0 (") and y.startswith("dimension 1 (")


def test_tsne_and_pca_views_and_the_similarity_heatmap(client):
    for view, axis in [("tsne", "t-SNE 1"), ("pca", "PC1 (")]:
        r = client.get(f"/embeddings?model=mlp&view={view}")
        assert r.status_code == 200 and axis in r.text
        assert len(points(r.text)) == 27
        # 27 x 27 cosine similarities, in clustering order
        assert len(re.findall(r'<g class="cell[^"]*" data-pair=', r.text)) == 27 * 27
        assert "cosine similarity (centred vectors)" in r.text
    r = client.get("/embeddings?model=mlp&view=raw")
    assert r.status_code == 422 and "4-dimensional" in r.text
    r = client.get("/embeddings?model=mlp&view=nope")
    assert r.status_code == 422 and "view must be one of" in r.text


def test_similarity_order_puts_similar_rows_together():
    import torch

    from app.lm.embeddings import similarity, similarity_order

    # two groups of directions, interleaved: the order must keep each group contiguous
    a, b = torch.tensor([1.0, 0.1]), torch.tensor([-0.1, 1.0])
    vectors = torch.stack([a, b, a * 1.1, b * 0.9, a * 0.8, b * 1.2])
    order = similarity_order(similarity(vectors))
    groups = ["a" if i % 2 == 0 else "b" for i in order]
    assert groups in (["a"] * 3 + ["b"] * 3, ["b"] * 3 + ["a"] * 3)
