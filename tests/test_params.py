"""One parameter set per operation (app/domain/params.py): the API (body and query), the sampling
page and the CLI accept and refuse the same values, at the bounds and just past them."""

from __future__ import annotations

import html as htmllib
import re
from typing import Annotated
from urllib.parse import parse_qs, urlsplit

import pytest
from pydantic import Field

from app.cli import main
from app.domain.params import (
    MAX_CLI_SAMPLE,
    MAX_LEN,
    MAX_PATTERN,
    MAX_SAMPLE,
    MAX_SEED,
    FormField,
    SampleParams,
    Shown,
)

# (field, value, accepted) -- top_k's bound is the tiny models' vocabulary size, 27.
CASES = [
    ("n", 0, False), ("n", 1, True), ("n", MAX_SAMPLE, True), ("n", MAX_SAMPLE + 1, False),
    ("temperature", 0, False), ("temperature", 0.01, True), ("temperature", 5, True),
    ("temperature", 5.01, False),
    ("top_k", 0, False), ("top_k", 1, True), ("top_k", 27, True), ("top_k", 28, False),
    ("seed", -1, False), ("seed", 0, True), ("seed", MAX_SEED, True),
    ("seed", MAX_SEED + 1, False),
    ("max_len", 0, False), ("max_len", 1, True), ("max_len", MAX_LEN, True),
    ("max_len", MAX_LEN + 1, False),
    ("prefix", "a" * MAX_LEN, True), ("prefix", "a" * (MAX_LEN + 1), False),
    # issue 26's fields
    ("top_p", 0, False), ("top_p", 0.001, True), ("top_p", 1, True), ("top_p", 1.01, False),
    ("min_p", -0.01, False), ("min_p", 0, True), ("min_p", 0.99, True), ("min_p", 1, False),
    ("min_len", 0, False), ("min_len", 1, True), ("min_len", MAX_LEN, True),
    ("min_len", MAX_LEN + 1, False),
    ("suffix", "a" * MAX_LEN, True), ("suffix", "a" * (MAX_LEN + 1), False),
    ("contains", "a" * MAX_LEN, True), ("contains", "a" * (MAX_LEN + 1), False),
    ("pattern", "a" * 10 + ".*", True), ("pattern", "a" * (MAX_PATTERN + 1), False),
    ("pattern", "(a", False),
]


def base(field: str) -> dict:
    """The other fields: one name (the n cases aside), room for the longest prefix."""
    values = {"n": 1, "seed": 7}
    if field in ("prefix", "suffix", "contains", "min_len"):
        values["max_len"] = MAX_LEN
    return values


def api_get(client, field, value) -> bool:
    r = client.get("/api/models/bigram/sample", params={**base(field), field: value})
    assert r.status_code in (200, 422), r.text
    return r.status_code == 200


def api_post(client, field, value) -> bool:
    r = client.post("/api/models/bigram/sample", json={**base(field), field: value})
    assert r.status_code in (200, 422), r.text
    return r.status_code == 200


def page(client, field, value) -> bool:
    r = client.get("/sample", params={"model": "bigram", **base(field), field: value})
    assert r.status_code in (200, 422), r.text
    if r.status_code == 200:
        return True
    assert re.search(r'<div class="error" role="alert">', r.text)
    return False


def cli(capsys, models_dir, field, value) -> bool:
    argv = ["sample", "--model", "bigram", "--models-dir", str(models_dir)]
    for k, v in {**base(field), field: value}.items():
        argv += ["-n" if k == "n" else "--" + k.replace("_", "-"), str(v)]
    code = main(argv)
    _, err = capsys.readouterr()
    assert code in (0, 1), err
    assert code == 0 or (err.count("\n") == 1 and field in err), err
    return code == 0


@pytest.mark.parametrize(("field", "value", "accepted"), CASES)
def test_api_page_and_cli_accept_and_refuse_alike(client, capsys, models_dir, field, value,
                                                  accepted):
    got = {"api query": api_get(client, field, value), "api body": api_post(client, field, value),
           "page": page(client, field, value)}
    if not (field == "n" and value > MAX_SAMPLE):  # the CLI may sample more (below)
        got["cli"] = cli(capsys, models_dir, field, value)
    assert got == dict.fromkeys(got, accepted)


def test_only_the_cli_allows_a_larger_n(capsys, models_dir):
    assert cli(capsys, models_dir, "n", MAX_SAMPLE + 1)
    assert not cli(capsys, models_dir, "n", MAX_CLI_SAMPLE + 1)


def test_the_form_inputs_carry_the_bounds(client):
    html = client.get("/sample").text
    for name in ("n", "top_k", "seed", "max_len", "min_len", "top_p", "min_p", "suffix",
                 "contains", "pattern"):
        bounds = SampleParams.form_bounds(name)
        tag = re.search(rf'<input [^>]*name="{name}"[^>]*>', html).group(0)
        for attr, value in bounds.items():
            assert f'{attr}="{value}"' in tag, (name, tag)
    tag = re.search(r'<input [^>]*name="prefix"[^>]*>', html).group(0)
    assert f'maxlength="{MAX_LEN}"' in tag
    tag = re.search(r'<input [^>]*name="temperature"[^>]*>', html).group(0)
    assert 'max="5"' in tag


def test_the_form_offers_only_what_an_exclusive_bound_lets_through(client):
    """HTML has no exclusive bound: top_p > 0 and min_p < 1 become the next value inside them
    on the form's step, so the browser refuses 0 and 1 as the server does."""
    html = client.get("/sample").text
    for name, attrs in (("top_p", ['min="0.001"', 'max="1"', 'step="0.001"']),
                        ("min_p", ['min="0"', 'max="0.999"', 'step="0.001"'])):
        tag = re.search(rf'<input [^>]*name="{name}"[^>]*>', html).group(0)
        assert all(a in tag for a in attrs) and 'step="any"' not in tag, tag
    assert re.search(r"Top-p <span[^>]*>[^<]*0 excluded", html)
    assert re.search(r"Min-p <span[^>]*>[^<]*1 excluded", html)


# A value other than the default for every field the form shows, that the bigram takes.
SET = {"n": "3", "temperature": "0.9", "top_k": "20", "seed": "11", "top_p": "0.95",
       "min_p": "0.01", "prefix": "a", "suffix": "a", "contains": "n", "pattern": "a.*",
       "min_len": "2", "max_len": "12", "unique": "1", "exclude": "1"}


def test_every_sample_field_is_an_input_and_in_the_permalink(client):
    """The form's inputs and its permalink are SampleParams' fields (app/domain/params.py:
    Shown)."""
    assert {f.field for f in SampleParams.form()} == set(SampleParams.model_fields)
    html = client.get("/sample", params={"model": "bigram", **SET}).text
    for f in SampleParams.form():
        assert re.search(rf'<input type="{f.type}" name="{f.name}"', html), f.name
    link = re.search(r'<p class="seed".*?<a href="([^"]+)"', html, re.S).group(1)
    query = parse_qs(urlsplit(htmllib.unescape(link)).query)
    assert query == {"model": ["bigram"], **{k: [v] for k, v in SET.items()}}


def test_a_field_declared_with_how_it_is_shown_is_a_form_input():
    class Extra(SampleParams):
        spice: Annotated[float, Shown("Spice", "{min:g} to {max:g}", more=True)] = Field(
            0.5, ge=0, le=2)

    (spice,) = [f for f in Extra.form() if f.field == "spice"]
    assert spice == FormField("spice", "spice", Shown("Spice", "{min:g} to {max:g}", more=True),
                              "number", {"min": 0, "max": 2, "inputmode": "decimal"}, "0.5")
    assert spice.bound == "0 to 2"


def test_the_cli_sample_goes_through_the_service(capsys, models_dir, client):
    """Same seed, same names as the API; and --unique --exclude-training as there."""
    api = client.get("/api/models/mlp/sample",
                     params={"n": 12, "seed": 5, "unique": True, "exclude_training": True}).json()
    assert main(["sample", "--model", "mlp", "--models-dir", str(models_dir), "-n", "12",
                 "--seed", "5", "--unique", "--exclude-training"]) == 0
    out = capsys.readouterr().out.splitlines()
    names = [line.split()[0] for line in out[2:] if not line.startswith("#")]  # after the header
    assert names == [x["name"] for x in api["names"]]
    assert len(set(names)) == len(names) and all(line.endswith("no") for line in out[2:])
