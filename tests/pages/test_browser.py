"""The pages in a real browser: headless Chromium against a real uvicorn serving the tiny models."""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest

from app.lm import KINDS
from tests.pages.oracle import tooltip

pytestmark = pytest.mark.browser

PAGES = ["/", "/bigram", "/bigram?view=counts", "/bigram?row=a", "/bigram?model=neural-bigram",
         "/bigram/compare?a=bigram&b=neural-bigram", "/embeddings", "/embeddings?x=0&y=2",
         "/sample?n=5&seed=1", "/score?names=emma%0Axqzvk", "/models/bigram",
         "/models/neural-bigram", "/models/mlp"]
ERROR_PAGES = ["/no-such-page", "/sample?n=zero", "/bigram?model=nope", "/models/nope"]


def test_heatmap_has_729_cells_and_tooltips_with_count_and_probability(page, base_url):
    page.goto(base_url + "/bigram?model=bigram")
    assert page.locator("#heatmap .cell").count() == 27 * 27
    cell = page.locator('#heatmap .cell[data-pair="em"]')
    assert cell.locator("title").text_content() == tooltip("e", "m")
    cell.hover()  # the script copies the tooltip into the readout line
    assert page.locator("#readout").text_content() == tooltip("e", "m")


def test_clicking_a_row_letter_shows_its_sorted_distribution(page, base_url):
    page.goto(base_url + "/bigram?model=bigram")
    page.locator('#heatmap a.row-link[href*="row=q"]').click()
    page.wait_for_url(re.compile(r"row=q"))
    bars = page.locator("#row-bars .bar")
    assert bars.count() == 27
    # '0.004 (count 0)' for pairs never seen: the probability is the first word
    values = [float(v.split()[0])
              for v in page.locator("#row-bars .bar-value").all_text_contents()]
    assert values == sorted(values, reverse=True)
    # 'quinn' is the only q in the data: after q comes u
    assert page.locator("#row-bars .bar-label").first.text_content() == "u"


def test_sample_form_returns_n_names_and_the_same_seed_gives_the_same_names(page, base_url):
    page.goto(base_url + "/sample")
    page.select_option("select[name=model]", "mlp")
    page.fill("input[name=n]", "7")
    page.fill("input[name=seed]", "1234")
    page.click("form.sample-form button[type=submit]")
    page.wait_for_url(re.compile(r"seed=1234"))
    first = page.locator("#samples td.name").all_text_contents()
    assert len(first) == 7
    assert "1234" in page.locator("#seed").text_content()
    page.locator("#seed a").click()  # the permalink
    page.wait_for_load_state()
    assert page.locator("#samples td.name").all_text_contents() == first


def test_the_sample_form_refuses_top_p_0_and_min_p_1_as_the_server_does(page, base_url):
    """The browser checks an input against its bounds; HTML has no exclusive one, so the form
    gives top_p and min_p the next value inside on a step of 0.001
    (app.domain.params.form_bounds)."""
    page.goto(base_url + "/sample")
    page.locator("details.more-options summary").click()
    for name, value, valid in (("top_p", "0", False), ("top_p", "0.001", True),
                               ("top_p", "0.9", True), ("top_p", "1", True),
                               ("min_p", "1", False), ("min_p", "0.999", True),
                               ("min_p", "0.05", True), ("min_p", "0", True)):
        box = page.locator(f"input[name={name}]")
        box.fill(value)
        assert box.evaluate("e => e.checkValidity()") is valid, (name, value)
        box.fill("")


def test_score_page_shows_one_coloured_letter_per_character(page, base_url):
    page.goto(base_url + "/score")
    page.fill("textarea[name=names]", "emma\nxavier")
    page.click("form.score-form button[type=submit]")
    page.wait_for_url(re.compile(r"names="))
    for i, name in enumerate(["emma", "xavier"]):
        row = page.locator("table.score-table tbody tr").nth(i)
        assert row.locator("th.name").text_content() == name
        strips = row.locator(".strip")
        assert strips.count() == len(KINDS)  # one per model: conftest's, one per kind
        for k in range(len(KINDS)):
            letters = strips.nth(k).locator(".letter")
            assert letters.all_text_contents() == list(name)
            classes = [letters.nth(j).get_attribute("class") for j in range(len(name))]
            assert all(re.search(r"\bsurprise-[0-7]\b", c) for c in classes)
            assert "P = " in letters.first.get_attribute("title")


def test_embeddings_plot_has_one_labelled_point_per_vocabulary_entry(page, base_url):
    page.goto(base_url + "/embeddings?model=mlp")
    points = page.locator("#scatter .point")
    assert points.count() == 27
    labels = page.locator("#scatter .point text").all_text_contents()
    assert sorted(labels) == sorted(".abcdefghijklmnopqrstuvwxyz")
    assert page.locator("#scatter .point.vowel").count() == 5
    assert page.locator("#scatter .point.boundary").count() == 1
    assert "PC1" in page.locator("#scatter").text_content()


def test_xss_attempt_renders_as_text(page, base_url):
    attack = "<script>alert(1)</script>"
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(base_url + "/score?names=" + quote(attack))
    assert page.locator("table.score-table th.name").first.text_content() == attack
    assert page.locator("textarea[name=names]").input_value() == attack
    assert page.locator("main script").count() == 0
    assert dialogs == []


@pytest.mark.parametrize("path", PAGES)
def test_no_page_logs_a_console_error(page, base_url, console, path):
    response = page.goto(base_url + path)
    page.wait_for_load_state("load")
    assert response.headers["content-type"].startswith("text/html")
    assert console.errors == []


@pytest.mark.parametrize("path", ERROR_PAGES)
def test_error_pages_are_html_and_log_nothing_but_their_status(page, base_url, console, path):
    response = page.goto(base_url + path)
    assert response.status in (404, 409, 422)  # app/web.py STATUS
    assert response.headers["content-type"].startswith("text/html")
    assert page.locator(".error[role=alert]").count() == 1
    # Chromium itself reports the page's 4xx status as a console error; nothing else may appear.
    others = [e for e in console.errors if f"status of {response.status}" not in e]
    assert others == []


def test_pages_work_without_javascript(browser, base_url):
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(base_url + "/sample")
    page.fill("input[name=n]", "3")
    page.click("form.sample-form button[type=submit]")
    page.wait_for_url(re.compile(r"n=3"))
    assert page.locator("#samples td.name").count() == 3
    page.goto(base_url + "/bigram?model=bigram")
    page.locator('#heatmap a.row-link[href*="row=e"]').click()
    page.wait_for_url(re.compile(r"row=e"))
    assert page.locator("#row-bars .bar").count() == 27
    context.close()


def test_phone_width_has_no_horizontal_overflow_outside_plots(browser, base_url):
    context = browser.new_context(viewport={"width": 375, "height": 740})
    page = context.new_page()
    for path in ["/", "/sample?n=3&seed=1", "/score?names=emma", "/models/mlp", "/embeddings"]:
        page.goto(base_url + path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, f"{path} is {width}px wide on a 375px screen"
    context.close()


def test_the_openapi_pages_render_offline_under_their_csp(page, base_url, console):
    """/docs and /redoc load Swagger UI and ReDoc from the app itself (no CDN: this machine has
    no internet) and run under their Content-Security-Policy without a violation."""
    page.goto(base_url + "/docs")
    page.locator(".opblock-summary-path", has_text="/api/models/{model}/sample").first.wait_for()
    assert page.locator(".opblock").count() >= 10
    assert console.errors == []
    page.goto(base_url + "/redoc")
    page.locator("h2", has_text="Sample names").first.wait_for()
    # ReDoc's footer asks for Redocly's logo from cdn.redoc.ly; the policy blocks that image
    # (and only that): nothing else on the page comes from another host.
    assert [e for e in console.errors if "cdn.redoc.ly" not in e] == []
