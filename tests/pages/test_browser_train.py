"""Issue 24, items 3 and 9 in a real browser: paste 300 names into /train, train a bigram, then an
MLP with a small step budget whose page shows its progress as it comes (static/train.js on the
job's events, no reload), then sample from the new model on the sample page.

The server has a users' folder of its own (tmp_path), so the session's models stay as they are.
Waits are Playwright's, bounded by TIMEOUT (a bound, not a timing assumption)."""

from __future__ import annotations

import random
import re

import pytest

from tests.live import live_process

pytestmark = pytest.mark.browser

TIMEOUT = 120_000  # ms
PHONE = {"width": 390, "height": 844}


def made_up_names(n: int = 300, seed: int = 0) -> list[str]:
    """n distinct names of two or three syllables, the same ones every run."""
    rng = random.Random(seed)
    onsets, vowels, codas = "b d f g k l m n p r s t v z".split(), "a e i o u ai ia".split(), \
        ["", "", "n", "l", "r", "s"]
    names: set[str] = set()
    while len(names) < n:
        parts = [rng.choice(onsets) + rng.choice(vowels) for _ in range(rng.choice((2, 3)))]
        names.add(("".join(parts) + rng.choice(codas)).capitalize())
    return sorted(names)


@pytest.fixture
def server(models_dir, tmp_path):
    with live_process(models_dir, env={"NAMELAB_USER_MODELS_DIR": str(tmp_path / "users"),
                                       "NAMELAB_RELOAD_SECONDS": "0.2"}) as (base, _):
        yield base


def train(page, base: str, **fields: str) -> None:
    page.goto(base + "/train")
    page.locator("textarea[name=text]").fill("\n".join(made_up_names()))
    page.locator("input[name=name]").fill(fields.pop("name"))
    page.locator("select[name=kind]").select_option(fields.pop("kind"))
    for name, value in fields.items():
        page.locator(f"input[name={name}]").fill(value)
    page.get_by_role("button", name="Train").click()
    page.wait_for_url(re.compile(r"/train/[0-9a-f]+$"))


def test_paste_names_train_a_bigram_then_an_mlp_watch_it_learn_and_sample(server, page,
                                                                          console):
    train(page, server, name="made", kind="bigram")
    page.locator("#job-names li").nth(9).wait_for(timeout=TIMEOUT)
    assert page.locator("#job-state").inner_text() == "done"
    assert page.locator('a[href="/bigram?model=made"]').count() == 1

    train(page, server, name="madenet", kind="mlp", steps="300", eval_interval="50")
    page.evaluate("window.notReloaded = true")
    shown: set[str] = set()
    while page.locator("#job-names li").count() < 10:
        shown.add(page.locator("#job-step").inner_text())
        page.wait_for_timeout(100)
        assert len(shown) < 1000, shown  # bounded: ~100 s at most
    shown.add(page.locator("#job-step").inner_text())
    steps = {int(s.split(" / ")[0].replace(",", "")) for s in shown if " / " in s}
    assert len(steps - {0}) >= 2, f"fewer than two progress updates: {shown}"
    assert max(steps) == 300 and page.evaluate("window.notReloaded") is True  # by script
    assert page.locator("#job-lines .series.val circle").count() >= 2  # the curve grew
    assert "bigram of the same names" in page.locator("#job-val").inner_text()
    assert page.locator(".cancel-form").is_hidden()  # nothing left to cancel

    page.locator('a[href="/sample?model=madenet"]').click()
    page.wait_for_url(re.compile(r"/sample\?model=madenet$"))
    page.get_by_role("button", name="Sample").click()
    page.locator("#samples td.name").first.wait_for(timeout=TIMEOUT)
    assert page.locator("#samples td.name").count() == 10
    assert "madenet" in page.locator("#samples caption").inner_text()
    assert console.errors == []


def test_the_train_page_fits_a_phone(server, browser):
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    page.goto(server + "/train")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page scrolls sideways: {width}px"
    box = page.get_by_role("button", name="Train").bounding_box()
    assert box["x"] + box["width"] <= PHONE["width"]
    context.close()


def test_the_token_is_asked_once_per_tab(models_dir, tmp_path, page, console):
    env = {"NAMELAB_USER_MODELS_DIR": str(tmp_path / "users"), "NAMELAB_TRAIN_TOKEN": "s3cret"}
    with live_process(models_dir, env=env) as (base, _):
        page.goto(base + "/train")
        token = page.locator("input[name=token]")
        token.fill("wrong")
        page.locator("textarea[name=text]").fill("\n".join(made_up_names()))
        page.locator("input[name=name]").fill("tok")
        page.get_by_role("button", name="Train").click()
        assert "the token is wrong" in page.locator("#error-token").inner_text()
        assert token.is_visible()  # refused: asked again, the names kept
        token.fill("s3cret")
        page.get_by_role("button", name="Train").click()
        page.wait_for_url(re.compile(r"/train/[0-9a-f]+$"))
        page.goto(base + "/train")
        assert page.locator("input[name=token]").is_hidden()  # kept for this tab
        train(page, base, name="tok2", kind="bigram")  # sent without being typed again
        page.locator("#job-names li").nth(9).wait_for(timeout=TIMEOUT)
    assert [e for e in console.errors if "401" not in e] == []
