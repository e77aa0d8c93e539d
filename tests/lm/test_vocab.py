import pytest

from app.lm.vocab import InvalidName, Vocab, normalize_name

ABC = Vocab("abcdefghijklmnopqrstuvwxyz")


def test_vocab_ids():
    assert str(ABC) == ".abcdefghijklmnopqrstuvwxyz" and len(ABC) == 27
    assert ABC.stoi["."] == 0 and ABC.stoi["a"] == 1 and ABC.itos[26] == "z"
    assert ABC.decode(ABC.encode("emma")) == "emma"
    assert Vocab.from_words(["bob", "ann"]) == Vocab("abno")
    assert Vocab.from_string(str(ABC)) == ABC


@pytest.mark.parametrize(("raw", "norm"), [(" José ", "jose"), ("ZOË", "zoe"), ("Ｅｍｍａ", "emma"),
                                           ("Ångström", "angstrom"), ("Mary-Jane", "maryjane"),
                                           ("D'Andre", "dandre"), ("O\u2019Neil", "oneil"),
                                           ("Jean\u2010Luc", "jeanluc")])
def test_normalize(raw, norm):
    assert normalize_name(raw) == norm
    assert ABC.normalize(raw) == norm


@pytest.mark.parametrize(("raw", "bad"), [
    ("emma2", "'2'"), ("anne marie", "' '"), ("a-b!", "'!'"), ("emma🙂", "'🙂'"),
])
def test_bad_characters_are_named(raw, bad):
    with pytest.raises(InvalidName, match="outside the alphabet") as e:
        ABC.normalize(raw)
    assert bad in str(e.value) and "abcdefghijklmnopqrstuvwxyz" in str(e.value)


def test_empty_name():
    with pytest.raises(InvalidName, match="empty"):
        ABC.normalize("   ")
    assert ABC.normalize("", what="prefix", allow_empty=True) == ""


def test_bad_vocabs():
    for chars in ("ba", "aa", "a.", ""):
        with pytest.raises(ValueError):
            Vocab(chars)


def test_the_length_limit_applies_to_the_normalised_name():
    from app.lm.vocab import MAX_NAME_LEN

    v = Vocab("abcdefghijklmnopqrstuvwxyz")
    assert v.normalize("ﬃ" * 21) == "ffi" * 21  # 63 letters
    with pytest.raises(InvalidName, match="is 66 letters long once normalised; at most 64"):
        v.normalize("ﬃ" * 22)
    assert len(v.normalize("a" * MAX_NAME_LEN)) == MAX_NAME_LEN
    with pytest.raises(InvalidName, match="prefix 'ⅷⅷ"):
        v.normalize("ⅷ" * 17, what="prefix", allow_empty=True)  # 68 letters
