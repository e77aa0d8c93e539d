"""The character vocabulary: '.' (id 0) marks both the start and the end of a name."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

BOUNDARY = "."
MAX_NAME_LEN = 64  # letters, once normalised: the longest name scored, sampled or used as prefix


class InvalidName(ValueError):
    """A name that cannot be scored or used as a prefix under a vocabulary."""


def strip_accents(text: str) -> str:
    """'José' -> 'Jose': NFKD-decompose and drop the combining marks."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


# Joiners inside a name, dropped: the SSA records (the default data) write "Mary-Jane" as
# maryjane and "D'Andre" as dandre, so that is what a model of them can score. Hyphens (ASCII,
# U+2010, U+2011) and apostrophes (ASCII, U+2019 right single quote, U+02BC modifier letter).
JOINERS = "-\u2010\u2011'\u2019\u02bc"
_DROP_JOINERS = str.maketrans("", "", JOINERS)


def normalize_name(text: str) -> str:
    """What a user typed -> what the model scores and trains on (the one rule, for scoring,
    sampling prefixes and training data alike): trimmed, NFKC, accents stripped, lowercased,
    hyphens and apostrophes dropped ('Mary-Jane' -> 'maryjane', 'Zoë' -> 'zoe')."""
    if not text.isascii():  # both normal forms leave ASCII as it is (and it has no accents)
        text = strip_accents(unicodedata.normalize("NFKC", text))
    return text.translate(_DROP_JOINERS).strip().lower()


@dataclass(frozen=True)
class Vocab:
    """'.' plus the sorted letters of the training data; `stoi`/`itos` as in makemore."""

    chars: str  # the letters, without the boundary, sorted

    def __post_init__(self) -> None:
        if BOUNDARY in self.chars:
            raise ValueError(f"vocab letters must not contain the boundary {BOUNDARY!r}")
        if list(self.chars) != sorted(set(self.chars)):
            raise ValueError(f"vocab letters must be sorted and distinct, got {self.chars!r}")
        if not self.chars:
            raise ValueError("vocab needs at least one letter")

    @classmethod
    def from_words(cls, words: list[str]) -> Vocab:
        return cls("".join(sorted(set("".join(words)))))

    @classmethod
    def from_string(cls, itos: str) -> Vocab:
        """Inverse of `str(vocab)`: '.abc...' -> Vocab('abc...')."""
        if not itos.startswith(BOUNDARY):
            raise ValueError(f"vocab string must start with {BOUNDARY!r}, got {itos[:10]!r}")
        return cls(itos[1:])

    def __str__(self) -> str:
        return BOUNDARY + self.chars

    def __len__(self) -> int:
        return len(self.chars) + 1

    @property
    def itos(self) -> list[str]:
        return [BOUNDARY, *self.chars]

    @property
    def stoi(self) -> dict[str, int]:
        return {ch: i for i, ch in enumerate(self.itos)}

    def check(self, text: str, what: str = "name") -> None:
        """Raise InvalidName naming every character of `text` outside the vocabulary."""
        bad = sorted({ch for ch in text if ch not in self.chars})
        if bad:
            shown = ", ".join(repr(ch) for ch in bad)
            raise InvalidName(
                f"{what} {text!r} has characters outside the alphabet: {shown}; "
                f"allowed letters are {self.chars!r}"
            )

    def encode(self, text: str) -> list[int]:
        self.check(text)
        stoi = self.stoi
        return [stoi[ch] for ch in text]

    def decode(self, ids: list[int]) -> str:
        itos = self.itos
        return "".join(itos[i] for i in ids if i != 0)

    def normalize(self, text: str, what: str = "name", allow_empty: bool = False) -> str:
        """Normalise user input and check it against the vocabulary and MAX_NAME_LEN, or raise
        InvalidName."""
        name = normalize_name(text)
        if len(name) > MAX_NAME_LEN:  # 'ﬃ' is one character and three letters
            raise InvalidName(
                f"{what} {_shorten(text)!r} is {len(name)} letters long once normalised; "
                f"at most {MAX_NAME_LEN}")
        if not name and not allow_empty:
            raise InvalidName(f"{what} is empty; type at least one letter from {self.chars!r}")
        self.check(name, what)
        return name


def _shorten(text: str, most: int = 24) -> str:
    return text if len(text) <= most else text[:most] + "..."
