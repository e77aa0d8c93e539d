"""The score page's history charts in a real browser, at 1280 and 390 px, on the shipped models
and table: no page wider than the screen, every chart text readable (11 px or more, 4.5:1) and
overlapping no other, and every chart titled."""

from __future__ import annotations

import pytest

from tests.history_helpers import shipped_table
from tests.pages.test_browser_explore import overlapping, too_small
from tests.pages.test_journeys import low_contrast

pytestmark = pytest.mark.browser

NAMES = "mildred%0Ajayden%0Ajordan%0Axqzvk"


@pytest.fixture(params=[1280, 390], ids=["desktop", "phone"])
def sized(request, browser):
    context = browser.new_context(viewport={"width": request.param, "height": 900})
    yield context.new_page(), request.param
    context.close()


def test_the_history_charts_fit_read_and_overlap_nothing(sized, shipped_url):
    table = shipped_table()
    page, width = sized
    assert page.goto(f"{shipped_url}/score?names={NAMES}").status == 200
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    charts = page.locator("svg.history-chart")
    assert charts.count() == 3  # xqzvk: a sentence, no chart
    for i in range(3):
        box = charts.nth(i).bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= width
    titles = page.locator("svg.history-chart > title").all_text_contents()
    assert [t.split(": ", 1)[1] for t in titles] == [
        table.lookup(n).sentence for n in ("mildred", "jayden", "jordan")]
    assert "never given in the US records 1880-2017" in page.locator(
        'figure[data-name="xqzvk"]').text_content()
    small, n = too_small(page, "main svg.history-chart")
    assert n > 3 * 15 and small == [], f"chart texts below 11 px: {small[:5]}"
    low, n, _ = low_contrast(page)
    assert low == [], f"{len(low)} of {n} texts below 4.5:1, e.g. {low[:5]}"
    assert overlapping(page) == []
