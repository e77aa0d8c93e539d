"""The SSA records by decade and sex: the data of the era-conditioned model (issue 27).

Spec `ssa:FIRST-LAST:decades` (the shipped model: `ssa:1880-2017:decades`): one example per
distinct (name, sex, decade) among the records of those years, in order of first record. Each
example is a `Record`: the name itself (a str, so that the split, the vocabulary and the training
names treat it as any other word) carrying its decade index (0..13 = the 1880s..the 2010s), its
sex and its births in that decade (the parquet's n column, summed).

Unweighted, one line per record, as names.txt is built: weighting by births would spend almost
every example on a few hundred popular names (Mary alone has 4 million births) and teach the
model next to nothing about how the long tail of a decade sounds, which is what telling eras
apart rests on. The births are not lost: they are the prior of P(decade | name) (`births`).

The era check (`era_check`) needs names of known decade that the model never saw. Rule: the
names all of whose records, either sex, fall in one decade (31,049 of the 97,310 names of
1880-2017; rare names, most of them of the 1990s-2010s): their decade is known without doubt,
and they are the names a reader asks about ("when is this unusual name from?"). A reproducible
fifth of them (random.Random(ERA_SEED).sample over the sorted list: 6,210 names) is held out,
and every record of those names is removed from the examples before the split, so no part of
train/val/test holds them (353,288 examples remain of 359,563 records). Names of one
decade only because their decade is the last one (the 2010s stop in 2017) are kept in: they are
what the records give, and the baseline (always the most common decade) profits from them as much.

Torch-free: the CLI and the data layer import it.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from functools import lru_cache

FIRST_YEAR = 1880
DECADES = tuple(range(1880, 2020, 10))  # decade starts; index 0..13
SEXES = ("F", "M")
SEX_WORDS = {"F": "girls", "M": "boys"}
DECADES_SPEC = re.compile(r"ssa:(\d{4})-(\d{4}):decades")
ERA_SEED = 27
ERA_FRACTION = 0.2  # of the one-decade names, held out for the era check


class Record(str):
    """A name with the decade and sex of its records: equal to, and hashed as, the name."""

    decade: int  # index into DECADES
    sex: int  # index into SEXES
    births: int  # births of this name and sex in this decade

    def __new__(cls, name: str, decade: int, sex: int, births: int = 0) -> Record:
        rec = super().__new__(cls, name)
        rec.decade, rec.sex, rec.births = decade, sex, births
        return rec


def decade_index(decade: int) -> int:
    """1920 -> 4 (ValueError naming the allowed values for anything but a decade start)."""
    if decade not in DECADES:
        raise ValueError(f"decade must be one of {', '.join(map(str, DECADES))}, got {decade}")
    return DECADES.index(decade)


def decade_words(i: int) -> str:
    return f"the {DECADES[i]}s"


@dataclass(frozen=True)
class DecadeData:
    records: list[Record]  # every (name, sex, decade) of the years, in order of first record
    held_out: dict[str, int]  # the era check's names -> their one decade (index)

    @property
    def examples(self) -> list[Record]:
        """The records of every name but the held-out ones: what the model is split on."""
        return [r for r in self.records if str(r) not in self.held_out]


def parse_spec(spec: str) -> tuple[int, int] | None:
    """(first, last) for a decades spec, None for any other spec."""
    m = DECADES_SPEC.fullmatch(spec.strip())
    return (int(m.group(1)), int(m.group(2))) if m else None


@lru_cache(maxsize=2)
def decade_data(first: int, last: int) -> DecadeData:
    """The records of the years first..last by (name, sex, decade), and the era check's names."""
    from app.data import DataError, ssa_parquet_path, ssa_years
    from app.lm.vocab import normalize_name

    lo, hi = ssa_years()
    if not (lo <= first <= last <= hi) or first < FIRST_YEAR:
        raise DataError(f"decades spec years {first}-{last} must lie within {lo}-{hi}, "
                        f"first <= last")
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(ssa_parquet_path(), columns=["year", "sex", "name", "n"])
    mask = pc.and_(pc.greater_equal(table["year"], first), pc.less_equal(table["year"], last))
    rows = table.filter(mask)
    years = rows.column("year").to_pylist()
    births: dict[tuple[str, int, int], int] = {}  # insertion order: order of first record
    for name, sex, year, n in zip(rows.column("name").to_pylist(), rows.column("sex").to_pylist(),
                                  years, rows.column("n").to_pylist(), strict=True):
        key = (normalize_name(name), SEXES.index(sex), (int(year) - FIRST_YEAR) // 10)
        births[key] = births.get(key, 0) + int(n)
    records = [Record(name, d, s, n) for (name, s, d), n in births.items()]
    decades_of: dict[str, set[int]] = {}
    for r in records:
        decades_of.setdefault(str(r), set()).add(r.decade)
    one = sorted(name for name, ds in decades_of.items() if len(ds) == 1)
    picked = random.Random(ERA_SEED).sample(one, round(ERA_FRACTION * len(one)))
    return DecadeData(records=records,
                      held_out={name: next(iter(decades_of[name])) for name in sorted(picked)})


def births(records: list[Record]) -> list[list[int]]:
    """Births per sex and decade, [sex][decade], summed over records."""
    out = [[0] * len(DECADES) for _ in SEXES]
    for r in records:
        out[r.sex][r.decade] += r.births
    return out
