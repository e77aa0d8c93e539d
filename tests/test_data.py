import random

import pytest

from app.data import (
    Counted,
    DataError,
    load_dataset,
    spec_in_words,
    specs_in_words,
    split_words,
)
from app.lm.vocab import Vocab
from tests.conftest import SHARED_NAMES


def test_ssa_2017_is_one_line_per_record_in_package_order():
    ds = load_dataset("ssa:2017")
    assert len(ds.words) == 32_469
    assert ds.words[:5] == ["emma", "olivia", "ava", "isabella", "sophia"]
    assert all(w.isascii() and w.isalpha() and w.islower() for w in ds.words)
    assert load_dataset("ssa:2017").sha256 == ds.sha256


def test_ssa_sex_filter_and_range():
    girls, boys = load_dataset("ssa:2017:F").words, load_dataset("ssa:2017:m").words
    assert len(girls) + len(boys) == 32_469
    decade = load_dataset("ssa:1920-1929:F").words
    assert len(decade) == len(set(decade))  # one line per distinct (name, sex); one sex here
    both = load_dataset("ssa:1920-1929").words
    assert len(both) > len(decade) and "mary" in both[:5]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("ssa:1700", "years 1880-2017 exist"),
        ("ssa:2017-2030", "year 2030"),
        ("ssa:1950-1940", "runs backwards"),
        ("ssa:2017:X", "use F or M"),
        ("ssa:twenty", "expected ssa:YEAR"),
        ("no/such/file.txt", "does not exist"),
    ],
)
def test_bad_specs_say_what_is_wrong(spec, message):
    with pytest.raises(DataError, match=message):
        load_dataset(spec)


def test_text_file_is_trimmed_lowercased_and_blank_lines_skipped(tmp_path):
    f = tmp_path / "n.txt"
    f.write_text("  Emma \n\nOLIVIA\n\n")
    ds = load_dataset(str(f))
    assert ds.words == ["emma", "olivia"]


def test_training_names_are_normalised_exactly_as_scoring_normalises_them(tmp_path):
    f = tmp_path / "n.txt"
    raw = ["Zoë", "Mary-Jane", "D\u2019Andre", " JOSÉ ", "emma"]
    f.write_text("\n".join(raw) + "\n")
    assert load_dataset(str(f)).words == ["zoe", "maryjane", "dandre", "jose", "emma"]
    abc = Vocab("abcdefghijklmnopqrstuvwxyz")
    assert load_dataset(str(f)).words == [abc.normalize(x) for x in raw]


def test_bad_lines_are_named_with_their_characters(tmp_path):
    f = tmp_path / "n.txt"
    f.write_text("emma\nzoë\nann marie\nbob\n-\n" + "x1\n" * 10)
    with pytest.raises(DataError) as e:
        load_dataset(str(f))
    msg = str(e.value)
    assert "line 3 'ann marie' has ' '" in msg and "line 5 '-' has no letters" in msg
    assert "zoë" not in msg  # normalised to zoe, as scoring does
    assert "and 7 more lines" in msg  # at most the first few


def test_empty_file_and_directory_are_refused(tmp_path):
    (tmp_path / "empty.txt").write_text("\n \n")
    with pytest.raises(DataError, match="empty"):
        load_dataset(str(tmp_path / "empty.txt"))
    with pytest.raises(DataError, match="not a file"):
        load_dataset(str(tmp_path))


def test_split_is_the_lectures():
    words = [f"w{i}" for i in range(1000)]
    expected = list(words)
    random.seed(42)
    random.shuffle(expected)
    split = split_words(words)
    assert split.train == expected[:800]
    assert split.val == expected[800:900]
    assert split.test == expected[900:]
    assert words == [f"w{i}" for i in range(1000)]  # the input is not shuffled in place
    assert split_words(words, seed=7).train != split.train
    assert split_words(words, seed=None).train == words


@pytest.mark.skipif(not SHARED_NAMES.exists(), reason="shared names.txt not present")
def test_names_txt_cross_check():
    ds = load_dataset(str(SHARED_NAMES))
    assert len(ds.words) == 32_033
    # for a file without a trailing newline the dataset hash is the file's hash
    import hashlib

    assert ds.sha256 == hashlib.sha256(SHARED_NAMES.read_bytes()).hexdigest()
    split = split_words(ds.words)
    assert (len(split.train), len(split.val), len(split.test)) == (25_626, 3_203, 3_204)


@pytest.mark.parametrize("spec, words", [
    ("ssa:2017", "US baby names of 2017 (SSA)"),
    ("ssa:1880-1889", "US baby names of 1880-1889 (SSA)"),
    ("ssa:1920-1929:F", "US baby girls' names of 1920-1929 (SSA)"),
    ("ssa:2017:m", "US baby boys' names of 2017 (SSA)"),
    ("/home/me/data/mine.txt", "the names in mine.txt"),
])
def test_a_spec_in_words(spec, words):
    assert spec_in_words(spec) == words


def test_several_specs_in_words():
    assert specs_in_words(["ssa:2017", "ssa:2017"]) == "US baby names of 2017 (SSA)"
    assert specs_in_words(["ssa:2017", "ssa:1880-1889"]).startswith("US baby names (SSA) of")
    assert specs_in_words(["ssa:2017", "mine.txt"]) == "different data: each card says which"


def test_the_split_keeps_each_words_count():
    words = [f"w{i}" for i in range(1000)]
    counted = Counted(words)
    counted.counts = [3 * i + 1 for i in range(1000)]
    for seed in (42, 7, None):
        plain, split = split_words(words, seed), split_words(counted, seed)
        for part in ("train", "val", "test") if seed is not None else ("train",):
            got = getattr(split, part)
            assert got == getattr(plain, part)  # the same words in the same order
            assert got.counts == [3 * int(w[1:]) + 1 for w in got]
