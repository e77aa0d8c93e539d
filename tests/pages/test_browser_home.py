"""Issue 21.1 in a real browser: on a phone, the home page of the shipped models leads with what a
visitor came for (score a name, generate names from the best model), then the cards best first;
it used to open on the 1880s bigram's card."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}


def test_a_phone_first_sees_the_score_box_and_the_generate_button(browser, shipped_url):
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    page.goto(shipped_url + "/")
    box = page.locator("#start-score input[name=names]")
    button = page.get_by_role("button", name="Generate names")
    first_card = page.locator("article.card").first
    for thing in (box, button):
        b = thing.bounding_box()
        assert b["y"] + b["height"] <= PHONE["height"], "not on the first screen"
        assert b["y"] < first_card.bounding_box()["y"], "below the first model card"
    assert first_card.locator("h2").inner_text() == "transformer"  # the best: lowest val NLL
    assert "1880s" not in first_card.inner_text()

    box.fill("Emma")
    box.press("Enter")
    page.wait_for_url(re.compile(r"/score\?names=Emma$"))
    assert page.locator("text=emma").count() > 0

    page.goto(shipped_url + "/")
    button.click()
    page.wait_for_url(re.compile(r"/sample\?model=transformer$"))
    assert page.locator("#samples td.name").count() == 10
    context.close()
