"""Hostile checkpoints: every bad file is refused with a CheckpointError naming the file and the
problem, and loading one never runs code (no pickle anywhere)."""

from __future__ import annotations

import json
import logging
import os
import pickle
import resource
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from app.lm import KINDS
from app.store.checkpoints import load_checkpoint
from app.store.checks import MAX_HEADER_BYTES, MAX_WEIGHT
from app.store.registry import Registry
from app.store.schema import META_KEY, NAMES_TENSOR, CheckpointError


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


@pytest.mark.parametrize(("config", "fragments"), [
    ({"n_hidden": 10**9, "n_embd": 10**6}, ["n_embd must be <= 8192"]),  # the first field
    ({"n_hidden": 10**12, "n_layers": 64}, ["n_hidden must be <= 8192"]),  # overflowed torch
    ({"block_size": 65}, ["block_size must be <= 64"]),
    ({"n_hidden": 8192, "n_layers": 8}, ["parameters; at most 2,000,000"]),
])
def test_huge_hyperparameters_are_refused_without_allocating_them(mlp, tmp_path, config,
                                                                  fragments):
    # A real (V*n_hidden) layer of 10^9 units would need tens of GB: the config is bounded and
    # its parameters counted on the meta device before anything that size is allocated.
    path = hostile(mlp, tmp_path / "huge.safetensors",
                   edit_meta=lambda m: m["config"].update(config))
    refused(path, "bad config for mlp" if "must be" in fragments[0] else "config needs",
            *fragments)


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


# --- round two (issue 14): bounded reads, semantic checks ------------------------------------


def test_metadata_nested_100000_deep_is_refused(bigram, tmp_path):
    _, tensors = read_parts(bigram)
    text = '{"format_version":1,"x":' + "[" * 100_000 + "]" * 100_000 + "}"
    path = write_parts(tmp_path / "deep.safetensors", text, tensors)
    refused(path, "nested too deeply")


def test_a_header_nested_100000_deep_is_refused(tmp_path):
    raw = b'{"x":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    path = tmp_path / "deep.safetensors"
    path.write_bytes(len(raw).to_bytes(8, "little") + raw)
    refused(path, "not a valid safetensors file", "not JSON")


def test_a_header_over_the_limit_is_refused_unread(bigram, tmp_path):
    size = MAX_HEADER_BYTES + 1
    path = tmp_path / "big-header.safetensors"
    path.write_bytes(size.to_bytes(8, "little") + b" " * size)
    refused(path, f"a header of {size:,} bytes", f"at most {MAX_HEADER_BYTES:,}")


def test_a_sparse_3_gib_file_is_refused_without_reading_it(bigram, tmp_path):
    """A copy of a good checkpoint grown to 3 GiB (a sparse file: no disk used). Reading it
    whole would take the process's peak memory up by 3 GiB; the header's offsets tell it is
    not what it claims first."""
    path = tmp_path / "huge.safetensors"
    shutil.copyfile(bigram, path)
    os.truncate(path, 3 * 2**30)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB, the peak so far
    message = refused(path, "the header's tensors end at byte", "3,221,225,472 bytes")
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200 * 1024, message


def test_data_past_the_last_tensor_is_refused(bigram, tmp_path):
    path = tmp_path / "padded.safetensors"
    path.write_bytes(bigram.read_bytes() + b"\0" * 16)
    refused(path, "not a valid safetensors file", "data past the end")


def test_a_gap_between_tensors_is_refused(bigram, tmp_path):
    data = bigram.read_bytes()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    for info in header.values():
        if isinstance(info, dict) and "data_offsets" in info:
            info["data_offsets"] = [o + 8 for o in info["data_offsets"]]
    raw = json.dumps(header).encode()
    path = tmp_path / "gap.safetensors"
    path.write_bytes(len(raw).to_bytes(8, "little") + raw + b"\0" * 8 + data[8 + n :])
    refused(path, "does not start where the one before it ends")


def test_a_vocabulary_of_1000_letters_is_refused(bigram, tmp_path):
    """Valid, but a 1001 x 1001 table on a page and a search over 1000 letters per step."""
    letters = "".join(chr(0x4E00 + i) for i in range(1000))

    def edit(tensors):
        tensors["counts"] = torch.ones(1001, 1001, dtype=torch.float64)
        tensors[NAMES_TENSOR] = torch.tensor(list(letters[:3].encode()), dtype=torch.uint8)

    path = hostile(bigram, tmp_path / "wide.safetensors",
                   edit_meta=put("vocab", "." + letters), edit_tensors=edit)
    refused(path, "a vocab of 1001 symbols", "at most 64")


@pytest.mark.parametrize(("smoothing", "count"), [(1e308, None), (1.0, 1e308), (1.0, 1e300),
                                                  (1e-300, 2.0**52)])
def test_a_bigram_whose_probabilities_underflow_is_refused(bigram, tmp_path, smoothing, count):
    """It used to load, then sample empty names and 500 on the heatmap and the score page."""
    def edit(tensors):
        if count is not None:
            tensors["counts"][1, 2] = count

    path = hostile(bigram, tmp_path / "overflow.safetensors",
                   edit_meta=lambda m: m["config"].__setitem__("smoothing", smoothing),
                   edit_tensors=edit)
    message = refused(path)
    assert ("probability 0" in message or "not numbers" in message or "counts over" in message
            or "has the number 1e+308" in message)


def test_a_bigram_without_smoothing_may_give_zero_probabilities(models_dir, tmp_path):
    from app.store.training import train_to_checkpoint
    from tests.conftest import TINY_NAMES

    data = tmp_path / "names.txt"
    data.write_text("\n".join(TINY_NAMES))
    path = train_to_checkpoint("bigram", str(data), tmp_path, "b0",
                               config=KINDS["bigram"].make_config({"smoothing": 0.0})).path
    model = load_checkpoint(path).model
    assert (model.bigram_probs() == 0).any()  # pairs never seen: loaded all the same


def test_weights_too_large_to_compute_with_are_refused(mlp, tmp_path):
    path = hostile(mlp, tmp_path / "big-weights.safetensors",
                   edit_tensors=lambda t: t["head.weight"].view(-1)[0].fill_(1e30))
    refused(path, "'head.weight'", f"larger than {MAX_WEIGHT:g}")


def test_a_tensor_of_an_unknown_dtype_is_refused_from_the_header(bigram, tmp_path):
    data = bigram.read_bytes()
    n = int.from_bytes(data[:8], "little")
    raw = data[8 : 8 + n].replace(b'"F64"', b'"X99"')
    path = tmp_path / "dtype.safetensors"
    path.write_bytes(len(raw).to_bytes(8, "little") + raw + data[8 + n :])
    refused(path, "'counts'", "dtype 'X99'")


# --- the folder: one bad file never stops the server ------------------------------------------


@pytest.fixture
def folder(models_dir, tmp_path) -> Path:
    out = tmp_path / "models"
    shutil.copytree(models_dir, out)
    return out


def test_every_hostile_file_of_the_issue_is_refused_and_the_good_ones_served(folder, caplog):
    deep = '{"format_version":1,"x":' + "[" * 100_000 + "]" * 100_000 + "}"
    write_parts(folder / "deep.safetensors", deep, read_parts(folder / "bigram.safetensors")[1])
    hostile(folder / "mlp.safetensors", folder / "tower.safetensors",
            edit_meta=lambda m: m["config"].update(n_hidden=10**12, n_layers=64))
    shutil.copyfile(folder / "bigram.safetensors", folder / "sparse.safetensors")
    os.truncate(folder / "sparse.safetensors", 3 * 2**30)
    hostile(folder / "bigram.safetensors", folder / "smooth.safetensors",
            edit_meta=lambda m: m["config"].__setitem__("smoothing", 1e308))
    for name in ("名前", 'a"b', "new\nline", "cr\rlf", "Mixed", "-dash"):
        shutil.copyfile(folder / "bigram.safetensors", folder / f"{name}.safetensors")
    shutil.copyfile(folder / "bigram.safetensors", folder / "UPPER.SAFETENSORS")
    (folder / "y.safetensors").mkdir()
    (folder / "gone.safetensors").symlink_to(folder / "nothing-here")
    os.mkfifo(folder / "fifo.safetensors")  # open() would block forever
    (folder / "notes.txt").write_text("not a checkpoint")

    with caplog.at_level(logging.WARNING, logger="namelab.registry"):
        registry = Registry.load_dir(folder)

    assert registry.names() == sorted(KINDS)  # conftest: one model per kind
    assert sorted(registry.refused) == sorted(
        ["deep.safetensors", "tower.safetensors", "sparse.safetensors", "smooth.safetensors",
         "名前.safetensors", 'a"b.safetensors', "new\nline.safetensors", "cr\rlf.safetensors",
         "Mixed.safetensors", "-dash.safetensors", "UPPER.SAFETENSORS", "y.safetensors",
         "gone.safetensors", "fifo.safetensors"])
    why = registry.refused
    assert "nested too deeply" in why["deep.safetensors"]
    assert "n_hidden must be <= 8192" in why["tower.safetensors"]
    assert "3,221,225,472 bytes" in why["sparse.safetensors"]
    assert "has the number 1e+308" in why["smooth.safetensors"]
    for name in ("名前", 'a"b', "new\nline", "cr\rlf", "Mixed", "-dash"):
        assert "is not allowed" in why[f"{name}.safetensors"]
    assert "lower case" in why["UPPER.SAFETENSORS"]
    assert "folder" in why["y.safetensors"]
    assert "symbolic link to nothing" in why["gone.safetensors"]
    assert "not a regular file" in why["fifo.safetensors"]
    for reason in why.values():  # short, one line, no path
        assert str(folder) not in reason and "\n" not in reason and "\r" not in reason
        assert len(reason) <= 300
    for record in caplog.records:  # no forged log lines from a file name
        assert "\n" not in record.getMessage() and "\r" not in record.getMessage()
    assert len(caplog.records) == len(why)


@pytest.mark.parametrize("error", [
    RecursionError("maximum recursion depth exceeded"), MemoryError(),
    RuntimeError("Storage size calculation overflowed\nException raised from "
                 "compute_storage_nbytes at /pytorch/aten/src/ATen/EmptyTensor.cpp:35\n"
                 + "frame #0: c10::Error::Error(...)\n" * 40),
    KeyError("x"), AssertionError()])
def test_any_exception_while_loading_refuses_that_file_only(folder, monkeypatch, error):
    import app.store.registry

    def load(path, limits):
        if path.name == "mlp.safetensors":
            raise error
        return load_checkpoint(path, limits)

    monkeypatch.setattr(app.store.registry, "load_checkpoint", load)
    registry = Registry.load_dir(folder)
    assert registry.names() == sorted(set(KINDS) - {"mlp"})
    reason = registry.refused["mlp.safetensors"]
    assert reason.startswith(f"cannot be loaded: {type(error).__name__}")
    assert "\n" not in reason and "frame #" not in reason and len(reason) <= 300


def test_readyz_shows_file_names_and_short_reasons_only(folder):
    from fastapi.testclient import TestClient

    from app.config import Settings
    from app.main import create_app

    (folder / "cut.safetensors").write_bytes((folder / "mlp.safetensors").read_bytes()[:1000])
    hostile(folder / "mlp.safetensors", folder / "tower.safetensors",
            edit_meta=lambda m: m["config"].update(n_hidden=10**12, n_layers=64))
    with TestClient(create_app(Settings(models_dir=folder))) as client:
        body = client.get("/readyz").json()
    assert body["models"] == sorted(KINDS)
    assert sorted(body["refused"]) == ["cut.safetensors", "tower.safetensors"]
    for reason in body["refused"].values():
        assert str(folder) not in reason and "\n" not in reason and len(reason) <= 300


def test_no_valid_model_is_one_line_whatever_the_file_names(models_dir, tmp_path):
    from app.config import Settings
    from app.main import NoModels, load_registry

    shutil.copyfile(models_dir / "bigram.safetensors", tmp_path / "new\nline.safetensors")
    (tmp_path / "cut.safetensors").write_bytes(b"\0" * 5)
    with pytest.raises(NoModels) as err:
        load_registry(Settings(models_dir=tmp_path))
    message = str(err.value)
    assert "\n" not in message and "'new\\nline.safetensors': the model name" in message
    assert "'cut.safetensors': not a valid safetensors file" in message


def test_a_file_that_cannot_even_be_looked_at_is_refused(folder, monkeypatch):
    real = Registry._skip_reason

    def look(path):
        if path.name == "mlp.safetensors":
            raise PermissionError(13, "Permission denied")
        return real(path)

    monkeypatch.setattr(Registry, "_skip_reason", staticmethod(look))
    registry = Registry.load_dir(folder)
    assert registry.names() == sorted(set(KINDS) - {"mlp"})
    assert registry.refused == {
        "mlp.safetensors": "cannot be loaded: PermissionError: [Errno 13] Permission denied"}
