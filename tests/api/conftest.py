"""API test fixtures: the loaded models behind the shared client, and odd models (a bigram
without smoothing, a 2-D MLP) for the edge cases the shipped ones never hit. The assertions the
tests share are in api_helpers.py."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.lm import MLPConfig
from app.lm.bigram import BigramConfig
from app.lm.config import OptimConfig
from app.main import create_app
from app.store.checkpoints import save_checkpoint
from app.store.training import train_to_checkpoint
from tests.conftest import TINY_NAMES


@pytest.fixture(scope="session")
def registry(client):
    return client.app.state.registry


@pytest.fixture(scope="session")
def loaded(registry):
    """loaded('mlp') -> the LoadedModel behind /api/models/mlp."""
    return registry.get


@pytest.fixture(scope="session")
def odd_models_dir(tmp_path_factory, tiny_names_file):
    """'bigram0': a bigram with smoothing 0 (log 0 happens); 'mlp2': an MLP with 2-D embeddings;
    'old': a checkpoint without held-out quantiles; 'whole': trained without a split."""
    out = tmp_path_factory.mktemp("odd-models")
    data = str(tiny_names_file)
    train_to_checkpoint("bigram", data, out, "bigram0", config=BigramConfig(smoothing=0.0))
    train_to_checkpoint(
        "mlp", data, out, "mlp2",
        config=MLPConfig(block_size=2, n_embd=2, n_hidden=16, n_layers=1, dropout=0.0),
        training=OptimConfig(steps=50, batch_size=32, warmup=5, eval_interval=25),
    )
    # 'old': made before checkpoints carried held-out quantiles; 'whole': no validation split
    old = train_to_checkpoint("bigram", data, out, "old")
    save_checkpoint(old.path, old.model, old.meta.model_copy(update={"held_out": None}),
                    sorted(set(TINY_NAMES)))
    train_to_checkpoint("bigram", data, out, "whole", split_seed=None)
    return out


@pytest.fixture(scope="session")
def odd_client(odd_models_dir):
    with TestClient(create_app(Settings(models_dir=odd_models_dir))) as c:
        yield c
