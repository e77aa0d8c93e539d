import math
from collections import Counter

import pytest
import torch
from api_helpers import ALPHABET, assert_422


def close(got, expected) -> None:
    """Nested lists of floats equal to `expected` (a tensor or nested lists) within float32."""
    torch.testing.assert_close(torch.tensor(got, dtype=torch.float64),
                               torch.as_tensor(expected, dtype=torch.float64),
                               rtol=1e-5, atol=1e-7)


# --- top -----------------------------------------------------------------------------------


def top(client, model="mlp", **params):
    r = client.get(f"/api/models/{model}/top", params=params)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.parametrize("model", ["bigram", "mlp"])
def test_top_names_are_best_first_and_match_their_scores(client, model):
    body = top(client, model, k=15)
    assert body["model"] == model and not body["exhausted"] and len(body["names"]) == 15
    lps = [x["log_prob"] for x in body["names"]]
    assert lps == sorted(lps, reverse=True)
    assert all(math.isclose(x["prob"], math.exp(x["log_prob"])) for x in body["names"])
    names = [x["name"] for x in body["names"]]
    assert len(set(names)) == 15
    scored = client.post(f"/api/models/{model}/score", json={"names": names}).json()
    for x, s in zip(body["names"], scored["results"], strict=True):
        # float32 forward passes over different batches: equal to ~1e-7, not bit for bit
        assert math.isclose(x["log_prob"], s["log_prob"], rel_tol=1e-6)


@pytest.mark.parametrize("model", ["bigram", "mlp"])
def test_top_is_exact_against_brute_force(client, model):
    """Every name of 1 or 2 letters scored through the API: the top 10 by brute force."""
    every = list(ALPHABET) + [a + b for a in ALPHABET for b in ALPHABET]
    scored = client.post(f"/api/models/{model}/score", json={"names": every}).json()["results"]
    best = sorted(scored, key=lambda x: -x["log_prob"])[:10]
    got = top(client, model, k=10, max_len=2)["names"]
    assert [x["log_prob"] for x in got] == pytest.approx([x["log_prob"] for x in best])
    assert {x["name"] for x in got} == {x["normalized"] for x in best}


def test_top_with_a_prefix(client):
    body = top(client, k=5, prefix=" Él")
    assert body["prefix"] == "el"
    assert all(x["name"].startswith("el") for x in body["names"])


@pytest.mark.parametrize(("params", "field", "words"), [
    ({"k": 0}, "k", ["greater than or equal to 1"]),
    ({"k": 101}, "k", ["less than or equal to 100"]),
    ({"k": "many"}, "k", ["valid integer"]),
    ({"prefix": "a!b"}, "prefix", ["'!'", ALPHABET]),
    ({"prefix": "emma", "max_len": 3}, "max_len", ["prefix 'emma'"]),
    ({"max_len": 65}, "max_len", ["less than or equal to 64"]),
    ({"n": 3}, "n", ["Extra"]),
])
def test_top_rejects_bad_parameters(client, params, field, words):
    assert_422(client.get("/api/models/mlp/top", params=params), field, *words)


# --- bigram --------------------------------------------------------------------------------


def test_bigram_table_against_counts_by_hand(client, loaded):
    body = client.get("/api/models/bigram/bigram").json()
    labels = body["labels"]
    assert labels == ["."] + list(ALPHABET)
    assert len(body["counts"]) == len(body["probs"]) == 27
    assert all(len(row) == 27 for row in body["counts"] + body["probs"])
    pairs = Counter(p for w in loaded("bigram").training_set
                    for p in zip("." + w, w + ".", strict=True))
    assert body["counts"] == [[pairs[(a, b)] for b in labels] for a in labels]
    for counts, probs in zip(body["counts"], body["probs"], strict=True):
        total = sum(counts) + 27  # smoothing 1
        assert probs == pytest.approx([(c + 1) / total for c in counts], rel=1e-5)


def test_neural_bigram_table_has_probs_but_no_counts(client, loaded):
    body = client.get("/api/models/neural-bigram/bigram").json()
    assert body["counts"] is None
    W = loaded("neural-bigram").model.W.detach()
    close(body["probs"], W.softmax(dim=1))
    assert all(math.isclose(sum(row), 1, rel_tol=1e-5) for row in body["probs"])


def test_a_model_without_a_bigram_table_is_409(client):
    r = client.get("/api/models/mlp/bigram")
    assert r.status_code == 409 and "no bigram table" in r.json()["detail"]


# --- embeddings ----------------------------------------------------------------------------


def test_embeddings_of_a_24d_style_model_are_pca_projected(client, loaded):
    body = client.get("/api/models/mlp/embeddings").json()
    table = loaded("mlp").model.embedding_table().double()
    assert body["labels"] == ["."] + list(ALPHABET) and body["dim"] == 4
    close(body["vectors"], table)
    proj = body["projection"]
    assert proj["method"] == "pca" and len(proj["points"]) == 27
    assert 0 < sum(proj["explained_variance"]) <= 1 + 1e-9
    ev = proj["explained_variance"]
    assert ev[0] >= ev[1]
    # PCA oracle: the PCA is of the centred vectors scaled to length 1 (then centred again);
    # the points' variances are the explained fractions of those vectors' total variance.
    pts = torch.tensor(proj["points"], dtype=torch.float64)
    unit = torch.nn.functional.normalize(table - table.mean(dim=0), dim=1)
    total = unit.var(dim=0, unbiased=False).sum()
    assert (pts.var(dim=0, unbiased=False) / total).tolist() == pytest.approx(ev, rel=1e-6)


def test_neighbours_are_nearest_by_cosine_of_the_centred_vectors(client, loaded):
    body = client.get("/api/models/mlp/embeddings", params={"k": 2}).json()
    table = loaded("mlp").model.embedding_table().double()
    X = torch.nn.functional.normalize(table - table.mean(dim=0), dim=1)
    sim = (X @ X.T).tolist()
    labels = body["labels"]
    for i, a in enumerate(labels):
        others = sorted((j for j in range(27) if j != i), key=lambda j: -sim[i][j])[:2]
        got = body["neighbours"][a]
        assert [n["label"] for n in got] == [labels[j] for j in others]
        assert [n["similarity"] for n in got] == pytest.approx([sim[i][j] for j in others],
                                                               abs=1e-4)


def test_a_2d_embedding_is_shown_raw(odd_client):
    body = odd_client.get("/api/models/mlp2/embeddings").json()
    assert body["dim"] == 2 and body["projection"]["method"] == "raw"
    close(body["projection"]["points"], body["vectors"])


def test_a_model_without_embeddings_is_409(client):
    for model in ("bigram", "neural-bigram"):
        r = client.get(f"/api/models/{model}/embeddings")
        assert r.status_code == 409 and "no embedding table" in r.json()["detail"]


def test_embeddings_reject_bad_k(client):
    assert_422(client.get("/api/models/mlp/embeddings", params={"k": 11}), "k",
               "less than or equal to 10")
    assert client.get("/api/models/gpt/embeddings").status_code == 404


def test_the_search_stops_at_the_request_deadline(client, deadline_after):
    full = client.get("/api/models/mlp/top?k=100&max_len=64").json()
    deadline_after(5)
    cut = client.get("/api/models/mlp/top?k=100&max_len=64").json()
    assert not full["exhausted"] and cut["exhausted"]
    assert cut["names"] == full["names"][: len(cut["names"])]  # exact as far as it got
