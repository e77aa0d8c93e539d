"""The SSA records by decade and sex: the data of the era-conditioned model (issue 27).

Spec `ssa:FIRST-LAST:decades` (the shipped model: `ssa:1880-2017:decades`): one example per
distinct (name, sex, decade) among the records of those years, in order of first record. Each
example is a `Record`: the name itself (a str, so that the split, the vocabulary and the training
names treat it as any other word) carrying its decade index (0..13 = the 1880s..the 2010s) and its
sex; the list of them (`Records`) carries each record's births (`counts`: the parquet's n
column, summed over the record's years) and the births of each sex and decade (`births`).

One line per record, as names.txt is built; the births travel with each line (the split keeps
them), and the trainer weighs them as the model's config says (app/lm/conditional.py,
`births_weight`: the era model draws each example in proportion to its births, so that it learns
which names babies were given in each decade, not only which names existed). The births of each
(sex, decade) are the prior of P(decade | name).

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
from functools import cache, lru_cache

from app.data.records import Counted

FIRST_YEAR = 1880
DECADES = tuple(range(1880, 2020, 10))  # decade starts; index 0..13
SEXES = ("F", "M")
SEX_WORDS = {"F": "girls", "M": "boys"}
DECADES_SPEC = re.compile(r"ssa:(\d{4})-(\d{4}):decades")
ERA_SEED = 27
ERA_FRACTION = 0.2  # of the one-decade names, held out for the era check


class Record(str):
    """A name with the decade and sex of its records: equal to, and hashed as, the name. One
    subclass per (decade, sex) holds them as class attributes (`Record.of`), so a record costs
    what its string costs: 360,000 records with a dict each took 170 MB more."""

    __slots__ = ()
    decade: int  # index into DECADES
    sex: int  # index into SEXES

    @staticmethod
    def of(name: str, decade: int, sex: int) -> Record:
        return _record_class(decade, sex)(name)


@cache
def _record_class(decade: int, sex: int) -> type[Record]:
    return type(f"Record_{decade}_{sex}", (Record,),
                {"__slots__": (), "decade": decade, "sex": sex})


class Records(Counted):
    """Records, each one's births (`counts`, kept by the split: the trainer may draw examples
    in proportion to them), and the births of each (sex, decade) summed over them:
    [sex][decade]."""

    births: list[list[int]]


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
    births: list[int]  # each record's births in its decade (the parquet's n, summed)
    held_out: dict[str, int]  # the era check's names -> their one decade (index)

    @property
    def examples(self) -> Records:
        """The records of every name but the held-out ones (what the model is split on), with
        their births by sex and decade (the prior the model keeps)."""
        out = Records()
        out.counts, out.births = [], [[0] * len(DECADES) for _ in SEXES]
        for r, n in zip(self.records, self.births, strict=True):
            if str(r) not in self.held_out:
                out.append(r)
                out.counts.append(n)
                out.births[r.sex][r.decade] += n
        return out


def parse_spec(spec: str) -> tuple[int, int] | None:
    """(first, last) for a decades spec, None for any other spec."""
    m = DECADES_SPEC.fullmatch(spec.strip())
    return (int(m.group(1)), int(m.group(2))) if m else None


@lru_cache(maxsize=2)
def decade_data(first: int, last: int) -> DecadeData:
    """The records of the years first..last by (name, sex, decade), and the era check's names.
    Grouped by pyarrow (one pass of Python over 1.9 million rows took 5 s and 600 MB)."""
    from app.data.records import DataError, ssa_parquet_path, ssa_years
    from app.lm.vocab import normalize_name

    lo, hi = ssa_years()
    if not (lo <= first <= last <= hi) or first < FIRST_YEAR:
        raise DataError(f"decades spec years {first}-{last} must lie within {lo}-{hi}, "
                        f"first <= last")
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(ssa_parquet_path(), columns=["year", "sex", "name", "n"])
    table = table.filter(pc.and_(pc.greater_equal(table["year"], first),
                                 pc.less_equal(table["year"], last)))
    decade = pc.divide(pc.subtract(pc.cast(table["year"], pa.int64()), FIRST_YEAR), 10)
    table = table.append_column("decade", decade).append_column(
        "row", pa.array(range(len(table)), pa.int64()))
    groups = table.group_by(["name", "sex", "decade"], use_threads=False).aggregate(
        [("n", "sum"), ("row", "min")]).sort_by("row_min")  # in order of first record
    raw = groups.column("name").to_pylist()
    norm = {x: normalize_name(x) for x in set(raw)}
    records = [Record.of(norm[x], d, SEXES.index(s))
               for x, s, d in zip(raw, groups.column("sex").to_pylist(),
                                  groups.column("decade").to_pylist(), strict=True)]
    decades_of: dict[str, set[int]] = {}
    for r in records:
        decades_of.setdefault(str(r), set()).add(r.decade)
    one = sorted(name for name, ds in decades_of.items() if len(ds) == 1)
    picked = random.Random(ERA_SEED).sample(one, round(ERA_FRACTION * len(one)))
    data = DecadeData(records=records, births=groups.column("n_sum").to_pylist(),
                      held_out={name: next(iter(decades_of[name])) for name in sorted(picked)})
    del table, groups
    pa.default_memory_pool().release_unused()  # ~80 MB of the grouping back to the system
    return data
