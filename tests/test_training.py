import json

import pytest
import torch

from app.lm import KINDS
from app.lm.bigram import BigramConfig
from app.lm.scoring import log_probs
from app.store.checkpoints import load_checkpoint
from app.store.training import train_to_checkpoint
from tests.conftest import TINY_NAMES


@pytest.mark.parametrize("name", list(KINDS))
def test_checkpoint_round_trip_gives_identical_outputs(models_dir, name, tiny_names_file):
    ckpt = load_checkpoint(models_dir / f"{name}.safetensors")
    meta = ckpt.meta
    assert meta.model_type == name and meta.format_version == 1
    assert meta.vocab == ".abcdefghijklmnopqrstuvwxyz"
    assert meta.dataset.spec == str(tiny_names_file) and meta.dataset.n_words == len(TINY_NAMES)
    assert meta.split.seed == 42 and meta.split.n_train == int(0.8 * len(TINY_NAMES))
    assert all(v is not None for v in meta.metrics.model_dump().values())
    # every number the checkpoint stores (the conditional model's prior too)
    stored = sum(t.numel() for t in ckpt.model.state_dict().values())
    assert meta.n_params == stored or name == "bigram"
    assert set(ckpt.training_names) < set(TINY_NAMES)
    assert len(ckpt.training_names) == meta.split.n_train
    # reload and compare every output
    again = load_checkpoint(ckpt.path)
    gen = torch.Generator().manual_seed(0)
    X = torch.randint(0, 27, (50, ckpt.model.block_size), generator=gen)
    assert torch.equal(ckpt.model(X)[0], again.model(X)[0])
    assert again.meta == meta


def test_metadata_is_json_in_the_safetensors_header(models_dir):
    raw = (models_dir / "mlp.safetensors").read_bytes()
    header = json.loads(raw[8 : 8 + int.from_bytes(raw[:8], "little")])
    meta = json.loads(header["__metadata__"]["namelab"])
    assert meta["config"] == {"block_size": 3, "n_embd": 4, "n_hidden": 32, "n_layers": 1,
                              "dropout": 0.0}
    assert meta["training"]["steps"] == 200 and meta["history"]["step"] == [50, 100, 150, 200]
    assert {"training_seconds", "created", "torch_version", "n_params"} <= set(meta)


def test_bigram_counts_travel_with_the_checkpoint(models_dir):
    ckpt = load_checkpoint(models_dir / "bigram.safetensors")
    counts = ckpt.model.bigram_counts()
    assert counts.sum().item() == sum(len(n) + 1 for n in ckpt.training_names)


def test_overwrite_is_atomic_and_leaves_no_temp_files(tmp_path, tiny_names_file):
    first = train_to_checkpoint("bigram", str(tiny_names_file), tmp_path, "m")
    second = train_to_checkpoint("bigram", str(tiny_names_file), tmp_path, "m",
                                 config=BigramConfig(smoothing=3))
    assert first.path == second.path == tmp_path / "m.safetensors"
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]
    assert load_checkpoint(second.path).model.cfg.smoothing == 3
    assert oct(second.path.stat().st_mode & 0o777) == "0o644"


def test_split_none_trains_on_everything(tmp_path, tiny_names_file):
    r = train_to_checkpoint("bigram", str(tiny_names_file), tmp_path, "all", split_seed=None)
    assert r.meta.split.n_train == len(TINY_NAMES) and r.meta.metrics.val_nll is None
    lp = log_probs(r.model, ["emma"])[0]
    assert lp < 0
