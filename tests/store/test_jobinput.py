"""Every refusal of a training job's input names the problem (issue 24, item 7); the options'
bounds are the kinds' own declarations, not restated."""

from __future__ import annotations

from dataclasses import fields

import pytest

from app.lm import KINDS
from app.lm.config import OptimConfig
from app.store.checks import MAX_VOCAB
from app.store.jobinput import (
    MAX_NAMES,
    MAX_UPLOAD_BYTES,
    TRAINABLE,
    BadJobInput,
    TooMuchData,
    check_kind,
    check_model_name,
    check_options,
    form_options,
    names_from_file,
    names_from_list,
    names_from_spec,
    option_names,
)

MLP = KINDS["mlp"]
CAPS = {"max_steps": 20_000, "max_params": 2_000_000}


def refused(fn, *args, **kwargs) -> str:
    with pytest.raises(BadJobInput) as e:
        fn(*args, **kwargs)
    return str(e.value)


def test_a_list_is_normalised_and_every_dropped_line_counted_with_its_reason():
    names = names_from_list(["  Mary-Jane ", "Zoë", "", "R2D2", "x" * 65, "O'Neil", "  "])
    assert names.words == ["maryjane", "zoe", "oneil"]
    assert names.dropped == {"blank": 2, "longer than 64 letters": 1,
                             "characters that are not letters (digits, punctuation, spaces)": 1}
    assert names.describe()["n_dropped"] == 4 and names.describe()["n_lines"] == 7


def test_names_of_other_alphabets_are_kept():
    names = names_from_list(["Αθηνά", "Ελένη", "Иван", "Ольга"])
    assert names.words == ["αθηνα", "ελενη", "иван", "ольга"]


def test_an_empty_list_is_refused():
    assert "is empty" in refused(names_from_list, [])


def test_one_name_is_refused():
    assert "1 usable name of 1 lines" in refused(names_from_list, ["Anna"])
    assert "one name only ('anna', 3 times)" in refused(names_from_list, ["Anna", "anna", "ANNA"])


def test_lines_with_no_letter_are_refused_saying_how_many_were_dropped_and_why():
    message = refused(names_from_list, ["123", "!!!", "--", "", "Anna"])
    assert "1 usable name of 5 lines" in message
    assert "2 characters that are not letters" in message
    assert "1 no letter once normalised" in message and "1 blank" in message


def test_a_list_that_is_not_a_list_of_strings_is_refused():
    assert "must be a list of strings, got str" in refused(names_from_list, "anna, bob")
    assert "names[1] is int" in refused(names_from_list, ["anna", 3])


def test_a_file_that_is_not_utf8_is_refused_naming_the_line():
    message = refused(names_from_file, "anna\nbéa\n".encode("latin-1"), "pets.txt")
    assert "the file pets.txt is not UTF-8 text" in message and "(line 2)" in message


def test_a_binary_upload_is_refused():
    assert "is binary" in refused(names_from_file, b"anna\nbob\x00\x01\x02", "x.bin")


def test_a_file_is_read_one_name_per_line_with_a_bom_and_crlf():
    names = names_from_file("\ufeffAnna\r\nBob\r\n\r\nÉlodie\n".encode(), "../../etc/pets.txt")
    assert names.words == ["anna", "bob", "elodie"]
    assert names.source == "the file pets.txt" and names.spec == "pets.txt"


def test_too_many_names_or_bytes_are_refused():
    with pytest.raises(TooMuchData, match=f"at most {MAX_NAMES:,}"):
        names_from_list(["anna"] * (MAX_NAMES + 1))
    with pytest.raises(TooMuchData, match=f"at most {MAX_UPLOAD_BYTES:,}"):
        names_from_file(b"a" * (MAX_UPLOAD_BYTES + 1))


def test_an_alphabet_larger_than_a_model_takes_is_refused():
    letters = [chr(0x4E00 + i) for i in range(MAX_VOCAB)]  # MAX_VOCAB letters, one too many
    message = refused(names_from_list, ["".join(letters[i : i + 8]) for i in range(0, 64, 8)])
    assert f"use {MAX_VOCAB} different letters; a model takes at most {MAX_VOCAB - 1}" in message
    names_from_list(["".join(letters[i : i + 9]) for i in range(0, MAX_VOCAB - 1, 9)])


def test_a_dataset_spec_must_be_ssa_and_have_records():
    assert "not an SSA spec" in refused(names_from_spec, "/etc/passwd")
    assert "not in the SSA records" in refused(names_from_spec, "ssa:1700")
    assert "bad sex" in refused(names_from_spec, "ssa:2017:X")


def test_a_dataset_spec_gives_its_names():
    names = names_from_spec("ssa:1990:F")
    assert names.spec == "ssa:1990:F" and len(names.words) > 10_000 and not names.dropped


def test_an_unknown_kind_is_refused_listing_the_kinds():
    message = refused(check_kind, "gpt5")
    assert "unknown kind 'gpt5'" in message and all(k in message for k in TRAINABLE)


def test_a_kind_conditioned_on_decade_and_sex_is_not_trained_from_a_list():
    conditioned = [k.name for k in KINDS.values() if k.has_conditions]
    assert conditioned and all(k not in TRAINABLE for k in conditioned)
    assert "learns from the SSA records by decade" in refused(check_kind, conditioned[0])
    assert "the records by decade and sex" in refused(names_from_spec, "ssa:1880-2017:decades")


@pytest.mark.parametrize("name", ["../x", "Bad Name", "", "-x", "a" * 65, None, "x/y"])
def test_a_model_name_that_is_not_a_plain_identifier_is_refused(name):
    assert "is not allowed" in refused(check_model_name, name)


def test_an_unknown_option_is_refused_listing_the_kinds_options():
    message = refused(check_options, MLP, {"stepz": 3}, **CAPS)
    assert "unknown option stepz for mlp" in message and "n_hidden" in message
    assert "unknown option device" in refused(check_options, MLP, {"device": "cuda"}, **CAPS)
    assert "unknown option steps for bigram" in refused(check_options, KINDS["bigram"],
                                                        {"steps": 3}, **CAPS)


def test_an_option_out_of_the_bounds_its_field_declares_is_refused():
    bound = next(f for f in fields(MLP.config) if f.name == "dropout").metadata["lt"]
    assert f"dropout must be < {bound}, got 1.5" in refused(check_options, MLP, {"dropout": 1.5},
                                                           **CAPS)
    ge = next(f for f in fields(OptimConfig) if f.name == "steps").metadata["ge"]
    assert f"steps must be >= {ge}, got 0" in refused(check_options, MLP, {"steps": 0}, **CAPS)
    assert "steps must be int, got '3'" in refused(check_options, MLP, {"steps": "3"}, **CAPS)
    assert "options must be an object" in refused(check_options, MLP, [1], **CAPS)


def test_the_servers_caps_on_steps_and_model_size_are_named():
    message = refused(check_options, MLP, {"steps": 20_001}, **CAPS)
    assert "steps must be <= 20,000 on this server (NAMELAB_TRAIN_MAX_STEPS)" in message
    message = refused(check_options, MLP, {"n_hidden": 4096, "n_layers": 4}, **CAPS)
    assert "NAMELAB_MAX_MODEL_PARAMS" in message


def test_the_defaults_are_the_kinds_own():
    options = check_options(MLP, {"steps": 100}, **CAPS)
    assert options.config == MLP.config() and options.training.steps == 100
    assert options.training.lr == MLP.training.lr
    assert set(options.as_dict()) == set(option_names(MLP))


def test_form_values_are_read_as_the_types_of_the_defaults():
    assert form_options(MLP, {"steps": "200", "dropout": "0.1", "lr": ""}) == {
        "steps": 200, "dropout": 0.1}
    assert "option steps must be int, got 'ten'" in refused(form_options, MLP, {"steps": "ten"})
