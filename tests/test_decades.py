"""The decades dataset against the parquet read directly (pyarrow, no code of Namelab's)."""

from __future__ import annotations

from collections import Counter, defaultdict

import pyarrow.parquet as pq
import pytest

from app.data import DataError, load_dataset, spec_in_words, ssa_parquet_path
from app.data.decades import DECADES, decade_data, decade_index, parse_spec


@pytest.fixture(scope="module")
def oracle():
    """(name, sex index, decade index) -> births for 1900-1919, read straight off the file."""
    t = pq.read_table(ssa_parquet_path(), columns=["year", "sex", "name", "n"]).to_pydict()
    out: Counter = Counter()
    for year, sex, name, n in zip(t["year"], t["sex"], t["name"], t["n"], strict=True):
        if 1900 <= year <= 1919:
            out[(name.lower(), "FM".index(sex), (int(year) - 1880) // 10)] += n
    return out


def test_one_record_per_distinct_name_sex_and_decade(oracle):
    data = decade_data(1900, 1919)
    got = {(str(r), r.sex, r.decade): n for r, n in zip(data.records, data.births, strict=True)}
    assert got == dict(oracle)
    # in order of first record: the file's order of rows (a Counter keeps first insertion)
    assert [(str(r), r.sex, r.decade) for r in data.records] == list(oracle)
    examples = data.examples  # every record but the held-out names', with their births
    assert examples.counts == [oracle[(str(r), r.sex, r.decade)] for r in examples]
    for s in range(2):
        for d in range(14):
            assert examples.births[s][d] == sum(n for (name, s2, d2), n in oracle.items()
                                                if (s2, d2) == (s, d)
                                                and name not in data.held_out)


def test_held_out_names_are_of_one_decade_and_never_in_the_examples(oracle):
    data = decade_data(1900, 1919)
    decades = defaultdict(set)
    for name, _, d in oracle:
        decades[name].add(d)
    one = {name for name, ds in decades.items() if len(ds) == 1}
    assert set(data.held_out) <= one
    assert len(data.held_out) == round(0.2 * len(one))
    assert all(decades[name] == {d} for name, d in data.held_out.items())
    words = load_dataset("ssa:1900-1919:decades").words
    assert not set(words) & set(data.held_out)
    assert len(words) == sum(1 for k in oracle if k[0] not in data.held_out)
    # reproducible: the same names every time
    decade_data.cache_clear()
    assert decade_data(1900, 1919).held_out == data.held_out


def test_specs_and_decades_are_checked():
    assert parse_spec("ssa:1880-2017:decades") == (1880, 2017)
    assert parse_spec("ssa:1880-2017") is None
    assert spec_in_words("ssa:1880-2017:decades") == ("US baby names of 1880-2017 (SSA), by "
                                                     "decade and sex")
    with pytest.raises(DataError, match="1880-2017"):
        load_dataset("ssa:1870-1890:decades")
    assert decade_index(1920) == 4 and DECADES[-1] == 2010
    with pytest.raises(ValueError, match="1880, 1890, .*2010, got 1925"):
        decade_index(1925)
