"""The next-letter page, the card's attention and hidden layers and the embedding search in a
real browser, at 1280 and 390 px: no text overlapping another, every text readable (WCAG 4.5:1,
the check of test_journeys.py), no page wider than the screen, the tree walked without script."""

from __future__ import annotations

import itertools
import re

import pytest

from tests.pages.test_journeys import low_contrast

pytestmark = pytest.mark.browser

VIEWS = ["/next?model=mlp&model=transformer&model=wavenet&prefix=em&top_k=5&temperature=0.8",
         "/next?model=bigram&prefix=", "/models/transformer?name=isabella", "/models/mlp",
         "/models/wavenet", "/embeddings?model=mlp&letter=a", "/embeddings?letter=e"]

# Every <text> of an svg of the main part, as its box on screen, grouped by svg.
TEXT_BOXES = """() => Array.from(document.querySelectorAll('main svg')).map(svg =>
  Array.from(svg.querySelectorAll('text')).filter(t => t.textContent.trim()).map(t => {
    const b = t.getBoundingClientRect();
    return [t.textContent, b.left, b.top, b.right, b.bottom]; }))"""


# Every <text> of the next-letter charts with its rendered size: the font size (svg units)
# times the svg's scale on screen.
TEXT_SIZES = """(sel) => Array.from(document.querySelectorAll(sel)).flatMap(svg =>
  Array.from(svg.querySelectorAll('text')).filter(t => t.textContent.trim()).map(t =>
    [t.textContent, parseFloat(getComputedStyle(t).fontSize) * svg.getScreenCTM().a]))"""
MIN_PX = 11  # rendered, at 1280 px with three models side by side and on a phone


def too_small(page, selector: str = "main svg.next-bars") -> tuple[list, int]:
    sizes = page.evaluate(TEXT_SIZES, selector)
    return [(t, round(px, 1)) for t, px in sizes if px < MIN_PX], len(sizes)


def overlapping(page) -> list[tuple[str, str]]:
    """Pairs of texts of one svg whose boxes overlap (by more than half a pixel)."""
    out = []
    for texts in page.evaluate(TEXT_BOXES):
        for a, b in itertools.combinations(texts, 2):
            if (min(a[3], b[3]) - max(a[1], b[1]) > 0.5
                    and min(a[4], b[4]) - max(a[2], b[2]) > 0.5):
                out.append((a[0], b[0]))
    return out


@pytest.fixture(params=[1280, 390], ids=["desktop", "phone"])
def sized(request, browser):
    context = browser.new_context(viewport={"width": request.param, "height": 900})
    yield context.new_page(), request.param
    context.close()


@pytest.mark.parametrize("path", VIEWS)
def test_each_view_fits_reads_and_overlaps_nothing(sized, shipped_url, path):
    page, width = sized
    response = page.goto(shipped_url + path)
    assert response.status == 200
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    low, n, _ = low_contrast(page)
    assert n > 20 and low == [], f"{len(low)} of {n} texts below 4.5:1, e.g. {low[:5]}"
    assert overlapping(page) == []
    small, n = too_small(page)
    assert small == [], f"{len(small)} of {n} chart texts below {MIN_PX} px, e.g. {small[:5]}"


def test_the_attention_cells_are_readable_and_their_tooltips_show(page, shipped_url):
    page.goto(shipped_url + "/models/transformer?name=emma#attention")
    maps = page.locator("svg.heatmap.attention")
    assert maps.count() == 4 * 5  # the shipped Transformer: 4 layers, 4 heads and their mean
    low, _, in_cells = low_contrast(page)
    assert in_cells == 20 * 15 and low == []  # 15 causal cells of 5x5 in each, all readable
    cell = maps.first.locator(".cell").nth(5)  # row 1 ('e'), column 0 ('.')
    cell.hover()
    assert page.locator("#readout").text_content().startswith("layer 1, head 1: 'e' at 1 ")


def test_the_tree_is_walked_without_javascript(browser, shipped_url):
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(shipped_url + "/next?model=mlp")
    for letter in "ava":
        page.locator(f'#next-bars-1 a.bar-link:has(g[data-symbol="{letter}"])').click()
        page.wait_for_load_state()
    assert re.search(r"prefix=ava\b", page.url)
    assert page.locator(".prefix-nav .prefix").text_content() == "ava"
    assert page.locator("table.prefix-steps tbody tr").count() == 3
    page.locator('#next-bars-1 a.bar-link:has(g[data-symbol="end"])').click()
    page.wait_for_load_state()
    assert "/score?names=ava" in page.url
    context.close()
