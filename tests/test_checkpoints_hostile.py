"""Hostile checkpoints: every bad file is refused with a CheckpointError naming the file and the
problem, and loading one never runs code (no pickle anywhere)."""

from __future__ import annotations

import json
import logging
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from app.checkpoints import META_KEY, NAMES_TENSOR, CheckpointError, load_checkpoint
from app.lm import KINDS
from app.registry import Registry


class Evil:
    """Unpickling this opens (creates) a marker file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def read_parts(path: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    data = path.read_bytes()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    return json.loads(header["__metadata__"][META_KEY]), st_load(data)


def write_parts(path: Path, meta: dict | str, tensors: dict[str, torch.Tensor]) -> Path:
    text = meta if isinstance(meta, str) else json.dumps(meta)
    path.write_bytes(st_save(tensors, metadata={META_KEY: text}))
    return path


def hostile(src: Path, dst: Path, edit_meta: Callable[[dict], object] | None = None,
            edit_tensors: Callable[[dict], object] | None = None) -> Path:
    """A copy of the checkpoint `src` at `dst` with its metadata and/or tensors edited."""
    meta, tensors = read_parts(src)
    if edit_meta:
        edit_meta(meta)
    if edit_tensors:
        edit_tensors(tensors)
    return write_parts(dst, meta, tensors)


def refused(path: Path, *fragments: str) -> str:
    """Assert loading `path` is refused with a message naming the file and every fragment."""
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    message = str(err.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message, message
    return message


@pytest.fixture
def mlp(models_dir) -> Path:
    return models_dir / "mlp.safetensors"


@pytest.fixture
def bigram(models_dir) -> Path:
    return models_dir / "bigram.safetensors"


# --- pickle: never unpickled, whatever the name --------------------------------------------


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".pkl", ".ckpt", ".bin", ".PT"])
def test_pickle_files_are_refused_without_running_code(tmp_path, suffix):
    marker = tmp_path / "code-ran"
    path = tmp_path / f"evil{suffix}"
    path.write_bytes(pickle.dumps({"state_dict": Evil(marker)}))
    refused(path, "pickle", "never loaded")
    assert not marker.exists()


def test_torch_save_file_is_refused(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"W": torch.zeros(27, 27)}, path)
    refused(path, "pickle")


def test_pickle_named_safetensors_is_refused_without_running_code(tmp_path):
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.safetensors"
    path.write_bytes(pickle.dumps(Evil(marker)))
    refused(path, "not a valid safetensors file")
    assert not marker.exists()


# --- broken files -----------------------------------------------------------------------------


@pytest.mark.parametrize("keep", [0, 4, 9, 100, 0.5, 0.99])
def test_truncated_file_is_refused(mlp, tmp_path, keep):
    data = mlp.read_bytes()
    n = keep if isinstance(keep, int) else int(len(data) * keep)
    path = tmp_path / "cut.safetensors"
    path.write_bytes(data[:n])
    refused(path, "not a valid safetensors file")


def test_corrupted_header_is_refused(mlp, tmp_path):
    data = bytearray(mlp.read_bytes())
    data[8:40] = b"\xff" * 32  # garbage where the JSON header starts
    path = tmp_path / "garbled.safetensors"
    path.write_bytes(bytes(data))
    refused(path, "not a valid safetensors file")


def test_absurd_header_size_is_refused(mlp, tmp_path):
    data = mlp.read_bytes()
    path = tmp_path / "huge-header.safetensors"
    path.write_bytes((10**12).to_bytes(8, "little") + data[8:])
    refused(path, "not a valid safetensors file")


def test_tensor_offsets_past_the_end_are_refused(mlp, tmp_path):
    data = mlp.read_bytes()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    first = next(k for k in header if k != "__metadata__")
    header[first]["data_offsets"][1] += 10**9
    raw = json.dumps(header).encode()
    path = tmp_path / "offsets.safetensors"
    path.write_bytes(len(raw).to_bytes(8, "little") + raw + data[8 + n :])
    refused(path, "not a valid safetensors file")


def test_safetensors_without_namelab_metadata_is_refused(tmp_path):
    path = tmp_path / "foreign.safetensors"
    path.write_bytes(st_save({"W": torch.zeros(27, 27)}))
    refused(path, "no Namelab metadata")


def test_metadata_that_is_not_json_is_refused(mlp, tmp_path):
    _, tensors = read_parts(mlp)
    path = write_parts(tmp_path / "x.safetensors", "{not json", tensors)
    refused(path, "metadata is not valid JSON")


def test_metadata_that_is_not_an_object_is_refused(mlp, tmp_path):
    _, tensors = read_parts(mlp)
    path = write_parts(tmp_path / "x.safetensors", "[1, 2, 3]", tensors)
    refused(path, "must be a JSON object")


# --- metadata: missing fields, wrong types, unknown versions -----------------------------------


def drop(key: str):
    return lambda meta: meta.pop(key)


def put(key: str, value):
    return lambda meta: meta.__setitem__(key, value)


@pytest.mark.parametrize(
    ("edit", "fragments"),
    [
        (drop("vocab"), ["bad metadata", "vocab", "required"]),
        (drop("model_type"), ["bad metadata", "model_type", "required"]),
        (drop("dataset"), ["bad metadata", "dataset"]),
        (drop("format_version"), ["unknown format_version None"]),
        (put("format_version", 2), ["unknown format_version 2", "reads 1"]),
        (put("format_version", "1"), ["unknown format_version '1'"]),
        (put("format", "pytorch"), ["bad metadata", "format"]),
        (put("n_params", "many"), ["bad metadata", "n_params"]),
        (put("n_params", -5), ["bad metadata", "n_params"]),
        (put("config", "big"), ["bad metadata", "config"]),
        (put("vocab", 27), ["bad metadata", "vocab"]),
        (put("metrics", {"train_nll": "low", "val_nll": None, "test_nll": None}),
         ["bad metadata", "metrics.train_nll"]),
        (put("created", None), ["bad metadata", "created"]),
        (put("surprise", 1), ["bad metadata", "surprise"]),
        (put("model_type", "gpt"), ["unknown model_type 'gpt'"]),
        (put("config", {"block_size": 3, "n_embd": 4, "n_hidden": 32, "n_layers": 1,
                        "dropout": 0.0, "extra": 1}), ["bad config for mlp"]),
        (put("config", {"block_size": "three", "n_embd": 4, "n_hidden": 32, "n_layers": 1,
                        "dropout": 0.0}), ["bad config for mlp"]),
        (put("config", {"block_size": 0, "n_embd": 4, "n_hidden": 32, "n_layers": 1,
                        "dropout": 0.0}), ["bad config for mlp", "block_size"]),
        (put("config", {}), ["weights do not match"]),  # defaults: 2 layers
    ],
)
def test_bad_metadata_is_refused(mlp, tmp_path, edit, fragments):
    path = hostile(mlp, tmp_path / "bad.safetensors", edit_meta=edit)
    refused(path, *fragments)


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers_in_metadata_are_refused(mlp, tmp_path, value):
    meta, tensors = read_parts(mlp)
    text = json.dumps(meta).replace('"train_nll": ', f'"train_nll": {value}, "_x": ', 1)
    path = write_parts(tmp_path / "nan-meta.safetensors", text, tensors)
    refused(path, "not a finite number")


def test_non_finite_bigram_smoothing_is_refused(bigram, tmp_path):
    meta, tensors = read_parts(bigram)
    text = json.dumps(meta).replace('"smoothing": 1.0', '"smoothing": NaN')
    assert "NaN" in text
    path = write_parts(tmp_path / "nan-smoothing.safetensors", text, tensors)
    refused(path, "not a finite number")


# --- weights that contradict the metadata ------------------------------------------------------


def test_shapes_contradicting_the_hyperparameters_are_refused(mlp, tmp_path):
    path = hostile(mlp, tmp_path / "wide.safetensors",
                   edit_meta=lambda m: m["config"].__setitem__("n_hidden", 64))
    refused(path, "has shape", "need")


def test_a_missing_layer_is_refused(mlp, tmp_path):
    path = hostile(mlp, tmp_path / "deeper.safetensors",
                   edit_meta=lambda m: m["config"].__setitem__("n_layers", 2))
    refused(path, "weights do not match", "missing")


def test_an_unexpected_tensor_is_refused(mlp, tmp_path):
    path = hostile(mlp, tmp_path / "extra.safetensors",
                   edit_tensors=lambda t: t.__setitem__("backdoor", torch.zeros(3)))
    refused(path, "unexpected ['backdoor']")


def test_huge_hyperparameters_are_refused_without_allocating_them(mlp, tmp_path):
    # A real (V*n_hidden) layer of 10^9 units would need tens of GB: the shapes are checked
    # against the file before anything that size is allocated.
    path = hostile(mlp, tmp_path / "huge.safetensors",
                   edit_meta=lambda m: m["config"].update(n_hidden=10**9, n_embd=10**6))
    refused(path, "has shape", "need")


def test_too_many_layers_are_refused(mlp, tmp_path):
    path = hostile(mlp, tmp_path / "tower.safetensors",
                   edit_meta=lambda m: m["config"].__setitem__("n_layers", 10**7))
    refused(path, "bad config for mlp", "n_layers")


def test_vocab_that_does_not_match_the_tables_is_refused(bigram, tmp_path):
    path = hostile(bigram, tmp_path / "short-vocab.safetensors",
                   edit_meta=lambda m: m.__setitem__("vocab", ".abcdefghijklmnopqrstuvwxy"))
    refused(path, "'counts'", "has shape (27, 27)", "26 symbols", "need (26, 26)")


def test_unsorted_vocab_is_refused(bigram, tmp_path):
    path = hostile(bigram, tmp_path / "unsorted.safetensors",
                   edit_meta=lambda m: m.__setitem__("vocab", ".zyxwvutsrqponmlkjihgfedcba"))
    refused(path, "bad vocab")


def test_training_names_outside_the_vocab_are_refused(bigram, tmp_path):
    def edit(tensors):
        tensors[NAMES_TENSOR] = torch.tensor(list(b"anna\nz0e"), dtype=torch.uint8)

    path = hostile(bigram, tmp_path / "names.safetensors", edit_tensors=edit)
    refused(path, "training names do not fit the vocab", "'z0e'")


@pytest.mark.parametrize(
    ("names", "fragment"),
    [
        (None, "missing or malformed"),
        (torch.zeros(2, 3, dtype=torch.uint8), "missing or malformed"),
        (torch.zeros(4, dtype=torch.float32), "missing or malformed"),
        (torch.tensor([0xFF, 0xFE], dtype=torch.uint8), "not UTF-8"),
    ],
)
def test_malformed_training_names_are_refused(bigram, tmp_path, names, fragment):
    def edit(tensors):
        if names is None:
            del tensors[NAMES_TENSOR]
        else:
            tensors[NAMES_TENSOR] = names

    path = hostile(bigram, tmp_path / "names.safetensors", edit_tensors=edit)
    refused(path, fragment)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("model", list(KINDS))
def test_non_finite_weights_are_refused(models_dir, tmp_path, model, value):
    key = next(iter(load_checkpoint(models_dir / f"{model}.safetensors").model.state_dict()))

    def edit(tensors):
        tensors[key].view(-1)[3] = value

    path = hostile(models_dir / f"{model}.safetensors", tmp_path / "nan.safetensors",
                   edit_tensors=edit)
    refused(path, repr(key), "NaN or infinite")


def test_negative_counts_are_refused(bigram, tmp_path):
    path = hostile(bigram, tmp_path / "neg.safetensors",
                   edit_tensors=lambda t: t["counts"].view(-1)[5].fill_(-1.0))
    refused(path, "negative counts")


@pytest.mark.parametrize("dtype", [torch.int64, torch.bool, torch.complex64])
def test_non_float_weights_are_refused(models_dir, tmp_path, dtype):
    def edit(tensors):
        tensors["W"] = tensors["W"].to(dtype)

    path = hostile(models_dir / "neural-bigram.safetensors", tmp_path / "int.safetensors",
                   edit_tensors=edit)
    refused(path, "'W'", "dtype")


# --- the registry: good models load, bad ones are reported -------------------------------------


def test_registry_loads_the_good_and_reports_the_refused(models_dir, tmp_path, caplog):
    folder = tmp_path / "models"
    shutil.copytree(models_dir, folder)
    marker = tmp_path / "code-ran"
    (folder / "evil.pt").write_bytes(pickle.dumps(Evil(marker)))
    (folder / "cut.safetensors").write_bytes((folder / "mlp.safetensors").read_bytes()[:1000])
    hostile(folder / "bigram.safetensors", folder / "v2.safetensors",
            edit_meta=put("format_version", 2))
    (folder / "README.txt").write_text("not a checkpoint")
    (folder / ".mlp.safetensors.abc123.tmp").write_bytes(b"half-written")

    with caplog.at_level(logging.WARNING, logger="namelab.registry"):
        registry = Registry.load_dir(folder)

    assert registry.names() == sorted(KINDS)
    assert sorted(registry.refused) == ["cut.safetensors", "evil.pt", "v2.safetensors"]
    assert "pickle" in registry.refused["evil.pt"]
    assert "truncated" in registry.refused["cut.safetensors"]
    assert "format_version 2" in registry.refused["v2.safetensors"]
    logged = caplog.text
    for name in registry.refused:
        assert name in logged
    assert not marker.exists()
