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


def normalize_name(text: str) -> str:
    """What a user typed -> what the model scores: trimmed, NFKC, accents stripped, lowercased."""
    if text.isascii():  # both normal forms leave ASCII as it is (and it has no accents)
        return text.strip().lower()
    return strip_accents(unicodedata.normalize("NFKC", text)).strip().lower()


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
