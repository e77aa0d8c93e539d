"""The score page's history of each name (app/pages/history.py): the chart's geometry, its
text alternative, and the page, through TestClient."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.pages.history import X_PAD, by_decade, history_chart
from app.store.history import NameHistory, SexHistory
from tests.history_helpers import FIRST, LAST, parquet_births, shipped_table


@pytest.fixture(scope="module")
def table():
    return shipped_table()


def points(line) -> list[tuple[float, float]]:
    return [tuple(map(float, p.split(","))) for p in line.points.split()]


def made_up(*sexes: tuple[str, dict[int, int]], first=FIRST, last=LAST) -> NameHistory:
    """A history of births given per year, for shapes the records may not have."""
    return NameHistory("x", "x", first, last, tuple(
        SexHistory(sex, first, tuple(years.get(y, 0) for y in range(first, last + 1)))
        for sex, years in sexes))


@pytest.mark.parametrize("name", ["mildred", "jordan", "zilpah"])
def test_every_point_is_inside_the_axes_and_each_peak_at_its_year(table, name):
    h = table.lookup(name)
    c = history_chart(h)
    f = c.frame
    assert [line.sex for line in c.lines] == [s.sex for s in h.sexes]
    for line, s in zip(c.lines, h.sexes, strict=True):
        pts = points(line)
        assert len(pts) == LAST - FIRST + 1  # one per year, 0 included
        assert all(f.left <= x <= f.right and f.top <= y <= f.bottom for x, y in pts)
        xs = [x for x, _ in pts]
        assert xs == sorted(xs) and (xs[0], xs[-1]) == (f.left + X_PAD, f.right - X_PAD)
        # the marker is the year's point, the highest of the line (the smallest SVG y)
        year = s.peak_year - FIRST
        assert (line.peak.cx, line.peak.cy) == pts[year]
        assert line.peak.cy == min(y for _, y in pts)
        assert line.peak.text == f"{s.peak_year}: {s.peak_births:,}"
        assert line.peak.title == f"peaked {s.peak}"
        assert f.top <= line.peak.y <= f.bottom and f.left <= line.peak.x <= f.right
        zero = [pts[i][1] for i, n in enumerate(s.counts) if n == 0]
        assert all(y == f.bottom for y in zero)  # a year without a record is drawn at 0


def test_the_axes_are_the_records_years_and_a_round_number_of_births(table):
    h = table.lookup("mildred")
    f = history_chart(h).frame
    assert [t.text for t in f.x_ticks] == ["1880", "1900", "1920", "1940", "1960", "1980", "2000"]
    assert [t.text for t in f.y_ticks] == ["0", "5k", "10k", "15k", "20k"]  # peak 18,058
    assert f.y_ticks[-1].pos == f.top and f.x_ticks[0].pos == f.left + X_PAD


def test_peak_labels_stay_inside_and_apart():
    """Both sexes peaking in the last year with the same births: the labels, on the side with
    room (left of the marker), are moved apart, and stay inside the plot area."""
    h = made_up(("F", {2017: 500}), ("M", {2017: 500}))
    c = history_chart(h)
    a, b = (line.peak for line in c.lines)
    assert a.anchor == b.anchor == "end" and a.x < a.cx
    assert abs(a.y - b.y) >= 14
    assert all(c.frame.top <= p.y <= c.frame.bottom for p in (a, b))
    first = history_chart(made_up(("F", {1880: 7}))).lines[0].peak
    assert first.anchor == "start" and first.x > first.cx  # right of a marker at the left edge


def test_the_decades_add_up_to_the_totals(table):
    h = table.lookup("jordan")
    decades = by_decade(h)
    assert [d.start for d in decades] == list(range(1880, 2020, 10))
    for s in h.sexes:
        assert sum(d.births[s.sex] for d in decades) == s.total
    expected = parquet_births("jordan")["M"]
    assert decades[11].births["M"] == sum(expected[1990 - FIRST:2000 - FIRST])  # the 1990s
    # a table that does not start on a decade
    assert [d.start for d in by_decade(made_up(("F", {2017: 5}), first=2015))] == [2010]


def figure(html: str, name: str) -> str:
    m = re.search(rf'<figure class="history-panel" data-name="{name}">.*?</figure>', html, re.S)
    assert m, f"no history of {name!r}"
    return m.group(0)


def test_the_score_page_shows_each_names_history(client, table):
    r = client.get("/score", params={"names": "Mildred\nxqzvk\nr2d2\nmildred"})
    assert r.status_code == 200
    mildred = figure(r.text, "mildred")
    h = table.lookup("Mildred")
    assert h.sentence in mildred and mildred.count('<svg class="lines history-chart"') == 1
    assert f"<title id=\"history-1-title\">Births per year named mildred, 1880-2017: " \
           f"{h.sentence}</title>" in mildred
    assert mildred.count("<polyline") == len(h.sexes) == 2
    rows = re.findall(r'<tr><th scope="row">(\d{4})s</th>', mildred)
    assert rows == [str(y) for y in range(1880, 2020, 10)]  # the text alternative
    never = figure(r.text, "xqzvk")
    assert "never given in the US records 1880-2017" in never and "<svg" not in never
    assert 'data-name="r2d2"' not in r.text  # the score table says what is wrong, once
    assert r.text.count('data-name="mildred"') == 1  # a name typed twice: one history


def test_without_the_table_the_page_says_so_and_still_scores(settings, tmp_path):
    missing = settings.model_copy(update={"history_file": tmp_path / "none.safetensors"})
    with TestClient(create_app(missing)) as c:
        r = c.get("/score", params={"names": "emma"})
    assert r.status_code == 200 and 'class="score-table"' in r.text
    assert "The history of names is not available: the history table is not installed" \
        in r.text
    assert "history-panel" not in r.text
