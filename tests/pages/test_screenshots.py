"""The README's screenshots, made in the browser against real models (opt-in).

    NAMELAB_SCREENSHOTS=docs/screenshots python -m pytest tests/pages/test_screenshots.py

serves the models in NAMELAB_SCREENSHOTS_MODELS (default: the project's models/) and writes one
PNG per page. Skipped unless NAMELAB_SCREENSHOTS is set, so the normal test run stays fast and
never rewrites the committed images.
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from tests.live import ROOT, live_server

OUT = os.environ.get("NAMELAB_SCREENSHOTS")
MODELS = Path(os.environ.get("NAMELAB_SCREENSHOTS_MODELS", ROOT / "models"))

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not OUT, reason="set NAMELAB_SCREENSHOTS=docs/screenshots to make them"),
]


def shots(models: list[str]) -> list[tuple[str, str, int, int, str | None]]:
    """(file, path, width, height, element to capture or None for the viewport)."""
    bigrams = [m for m in models if m.startswith("bigram")]
    first = "bigram" if "bigram" in models else bigrams[0]
    old = next((m for m in models if "1880" in m), None)
    new = next((m for m in models if "2010" in m), first)
    a, b = (old, new) if old else (first, "neural-bigram")
    sampler = "mlp" if "mlp" in models else models[-1]
    out = [
        ("overview.png", "/", 1280, 860, None),
        ("bigram.png", f"/bigram?model={first}", 1280, 1400, "main"),
        ("bigram-row.png", f"/bigram?model={first}&row=a", 1280, 900, "#row"),
        ("compare.png", f"/bigram/compare?a={a}&b={b}", 1280, 1400, None),
        ("sample.png", f"/sample?model={sampler}&n=12&seed=42", 1280, 800, None),
        ("score.png", "/score?names=emma%0Axqzvk", 1280, 1240, None),  # with the history
        ("model-neural-bigram.png", "/models/neural-bigram", 1280, 1050, None),
        ("phone.png", "/score?names=emma", 390, 844, None),
    ]
    if any(m.startswith("mlp") for m in models):  # the default view: a 2-D model if there is one
        out.append(("embeddings.png", "/embeddings", 1280, 960, None))
    # issue 25, looking inside (docs/explorer.md)
    neural = [m for m in ("mlp", "wavenet", "transformer") if m in models]
    if neural:
        side = "&".join(f"model={m}" for m in neural)
        out += [("next.png", f"/next?{side}&prefix=em&top_k=5&temperature=0.8", 1280, 1250,
                 None),
                ("next-phone.png", f"/next?model={neural[-1]}&prefix=em", 390, 844,
                 "section.next-model"),
                ("embeddings-search.png", f"/embeddings?model={neural[0]}&letter=a", 1280, 960,
                 None)]
    for m in neural:
        out.append((f"health-{m}.png", f"/models/{m}", 1280, 900,
                    "section[aria-labelledby=health-title]"))
    if "transformer" in models:
        # a window as tall as the maps: the readout, pinned to the window's bottom, then sits
        # in its place below them (in a shorter one, the capture shows it mid-way)
        out.append(("attention.png", "/models/transformer?name=emma", 1280, 1600, "#attention"))
    return out


def test_screenshots(browser):
    out = Path(OUT)
    out.mkdir(parents=True, exist_ok=True)
    with live_server(MODELS) as base:
        models = [m["name"] for m in httpx.get(base + "/api/models").json()]
        for m in models:  # each model's kept top 100, searched once, as on a running server
            httpx.get(f"{base}/models/{m}", timeout=60)
        for name, path, width, height, element in shots(models):
            context = browser.new_context(viewport={"width": width, "height": height})
            page = context.new_page()
            response = page.goto(base + path)
            assert response.status == 200, path
            if name == "bigram.png":  # the script shows the focused cell's details (focus, not
                # hover: capturing the element scrolls the page under a hovering pointer)
                page.focus('#heatmap .cell[data-pair="an"]')
            target = page.locator(element) if element else page
            target.screenshot(path=str(out / name), animations="disabled")
            context.close()


def test_screenshots_of_training(browser, tmp_path):
    """train.png (the form) and train-job.png (an MLP of 300 made-up names, done), on a server
    whose users' folder is tmp_path: the shipped models/ get no new file."""
    from tests.live import live_process
    from tests.pages.test_browser_train import made_up_names

    out = Path(OUT)
    out.mkdir(parents=True, exist_ok=True)
    env = {"NAMELAB_USER_MODELS_DIR": str(tmp_path / "users")}
    with live_process(MODELS, env=env) as (base, _):
        context = browser.new_context(viewport={"width": 1280, "height": 1000})
        page = context.new_page()
        page.goto(base + "/train")
        page.locator("textarea[name=text]").fill("\n".join(made_up_names()))
        page.locator("input[name=name]").fill("made")
        page.locator("select[name=kind]").select_option("mlp")
        page.locator("input[name=steps]").fill("600")
        page.locator("input[name=eval_interval]").fill("50")
        page.screenshot(path=str(out / "train.png"), animations="disabled")
        page.get_by_role("button", name="Train").click()
        page.locator("#job-names li").nth(9).wait_for(timeout=180_000)
        page.screenshot(path=str(out / "train-job.png"), full_page=True, animations="disabled")
        context.close()
