from app.lm import KINDS


def test_list_models_gives_every_card_in_name_order(client):
    r = client.get("/api/models")
    assert r.status_code == 200
    cards = r.json()
    assert [c["name"] for c in cards] == sorted(KINDS)  # conftest: one model per kind
    assert [c["type"] for c in cards] == sorted(KINDS)
    for c in cards:
        kind = KINDS[c["type"]]
        assert c["has_bigram_table"] == kind.has_table
        assert c["has_embeddings"] == kind.has_embeddings


def test_model_card_matches_the_checkpoint(client, loaded):
    m = loaded("mlp")
    card = client.get("/api/models/mlp").json()
    assert card["hyperparameters"] == m.meta.config
    assert card["n_params"] == m.model.n_params == m.meta.n_params
    assert card["vocab"] == ".abcdefghijklmnopqrstuvwxyz" and card["vocab_size"] == 27
    assert card["block_size"] == 3
    assert card["dataset"] == m.meta.dataset.model_dump()
    assert len(card["dataset"]["sha256"]) == 64
    assert set(card["metrics"]) == {"train_nll", "val_nll", "test_nll"}
    assert card["metrics"]["val_nll"] == m.meta.metrics.val_nll
    assert card["training_seconds"] >= 0 and card["created"].startswith("20")
    assert card["has_embeddings"] and not card["has_bigram_table"]


def test_cards_say_which_tables_exist(client):
    cards = {c["name"]: c for c in client.get("/api/models").json()}
    assert cards["bigram"]["has_bigram_table"] and not cards["bigram"]["has_embeddings"]
    assert cards["neural-bigram"]["has_bigram_table"]
    assert cards["bigram"]["hyperparameters"] == {"smoothing": 1.0}


def test_unknown_model_is_404_listing_the_available(client):
    r = client.get("/api/models/gpt")
    assert r.status_code == 404
    assert r.json() == {
        "detail": f"unknown model 'gpt'; available models: {', '.join(sorted(KINDS))}"
    }
