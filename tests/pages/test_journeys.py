"""The three journeys in a real browser on the shipped models: every chart text readable
(WCAG contrast from the browser's computed colours), an embedding plot whose markers never
overlap and where the vowels group, keyboard access to the heatmap, names that never break."""

from __future__ import annotations

import itertools
import math
import re

import pytest

pytestmark = pytest.mark.browser

# For every <text> of every chart: its computed fill and the computed fill of what is behind
# it (a heatmap cell's rect, a scatter marker's circle, else the page's background).
TEXT_COLOURS = """(root) => Array.from(document.querySelectorAll(root + ' svg text')).map(t => {
  const cell = t.closest('.cell'), point = t.closest('.point');
  const behind = cell ? cell.querySelector('rect') : point ? point.querySelector('circle.dot')
                      : document.body;
  const bg = getComputedStyle(behind);
  return [t.textContent, getComputedStyle(t).fill, behind === document.body ? bg.backgroundColor
                                                                            : bg.fill, !!cell];
})"""


def rgb(css: str) -> tuple[int, int, int]:
    r, g, b = (int(float(x)) for x in re.findall(r"[\d.]+", css)[:3])
    return r, g, b


def luminance(c: tuple[int, int, int]) -> float:
    def ch(v: int) -> float:
        s = v / 255
        return s / 12.92 if s <= 0.04045 else ((s + 0.055) / 1.055) ** 2.4
    r, g, b = (ch(v) for v in c)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    la, lb = sorted((luminance(rgb(a)), luminance(rgb(b))))
    return (lb + 0.05) / (la + 0.05)


def low_contrast(page, root: str = "main") -> tuple[list, int, int]:
    texts = page.evaluate(TEXT_COLOURS, root)
    low = [(t, fg, bg, round(contrast(fg, bg), 2)) for t, fg, bg, _ in texts
           if contrast(fg, bg) < 4.5]
    return low, len(texts), sum(1 for *_, in_cell in texts if in_cell)


@pytest.mark.parametrize("view", ["probs", "counts", "logprobs"])
def test_every_heatmap_cell_text_has_contrast_4_5(page, shipped_url, view):
    page.goto(f"{shipped_url}/bigram?model=bigram&view={view}")
    low, n, in_cells = low_contrast(page)
    assert in_cells == 2 * 729  # pair and value in each of the 729 cells
    assert low == [], f"{len(low)} of {n} texts below 4.5:1, e.g. {low[:5]}"


@pytest.mark.parametrize("path", [
    "/bigram/compare?a=bigram-1880s&b=bigram-2010s", "/bigram?model=bigram&view=counts&row=a",
    "/embeddings", "/embeddings?model=mlp", "/embeddings?model=mlp&view=tsne", "/models/mlp",
])
def test_every_chart_text_has_contrast_4_5(page, shipped_url, path):
    page.goto(shipped_url + path)
    low, n, in_cells = low_contrast(page)
    if path.startswith("/bigram/compare"):
        assert in_cells == 2 * 729  # the difference heatmap
    assert n > 10 and low == [], f"{len(low)} of {n} texts below 4.5:1, e.g. {low[:5]}"


def markers(page) -> dict[str, tuple[float, float, float]]:
    """label -> (x, y, radius) of each scatter marker on screen."""
    boxes = page.evaluate("""() => Array.from(document.querySelectorAll('#scatter .point')).map(
        p => { const b = p.querySelector('circle.dot').getBoundingClientRect();
               return [p.dataset.label, b.x + b.width / 2, b.y + b.height / 2, b.width / 2]; })""")
    return {label: (x, y, r) for label, x, y, r in boxes}


def test_default_embedding_view_is_the_2d_model_markers_apart_vowels_together(page, shipped_url):
    page.goto(shipped_url + "/embeddings")
    heading = page.locator("main h2").first.text_content()
    assert "mlp-2d" in heading and "both coordinates" in heading
    pts = markers(page)
    assert len(pts) == 27
    overlaps = [(a, b) for (a, p), (b, q) in itertools.combinations(pts.items(), 2)
                if math.dist(p[:2], q[:2]) < p[2] + q[2]]
    assert overlaps == []
    vowels = [pts[v][:2] for v in "aeiou"]
    consonants = [p[:2] for k, p in pts.items() if k not in "aeiou."]
    within = sum(math.dist(a, b) for a, b in itertools.combinations(vowels, 2)) / 10
    across = sum(math.dist(a, b) for a in vowels for b in consonants) / (5 * len(consonants))
    assert within < across


def test_heatmap_cells_are_reachable_by_keyboard_and_the_readout_stays_in_view(page, base_url):
    page.goto(base_url + "/bigram?model=bigram")
    for _ in range(200):  # Tab through the page (links, form, row links) to the heatmap
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.classList.contains('cell')"):
            break
    assert page.evaluate("document.activeElement.dataset.pair") == ".."
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowDown")
    assert page.evaluate("document.activeElement.dataset.pair") == "aa"
    assert page.locator("#readout").text_content().startswith("a -> a: P = ")
    page.locator('#heatmap .cell[data-pair="zz"]').hover()  # the last row, scrolled into view
    box = page.locator("#readout").bounding_box()
    assert page.locator("#readout").text_content().startswith("z -> z: P = ")
    assert 0 <= box["y"] and box["y"] + box["height"] <= 900


@pytest.mark.parametrize("width, path, selector", [
    (390, "/sample?model=mlp&n=40&seed=7", "td.name a"),
    (1280, "/", "ol.samples li"),
    (390, "/", "ol.samples li"),
])
def test_names_never_break_mid_word(browser, shipped_url, width, path, selector):
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    page.goto(shipped_url + path)
    lines = page.evaluate("""(sel) => Array.from(document.querySelectorAll(sel)).map(el => {
        const r = document.createRange(); r.selectNodeContents(el.firstChild);
        return [el.firstChild.textContent, new Set(Array.from(r.getClientRects()).map(
            q => Math.round(q.top))).size]; })""", selector)
    assert len(lines) >= 10
    assert [name for name, n in lines if n != 1] == []
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    context.close()


def test_compare_page_fits_a_phone(browser, shipped_url):
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.goto(shipped_url + "/bigram/compare?a=bigram-1880s&b=bigram-2010s")
    # the big difference heatmap scrolls inside its own box; the page itself does not
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    context.close()
