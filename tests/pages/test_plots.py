"""Plot geometry: scales, ticks, colours and chart shapes, checked against hand-computed values."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.pages import plots


def test_linear_scale_maps_ends_and_middle():
    s = plots.Linear(0, 10, 100, 200)
    assert (s(0), s(5), s(10)) == (100, 150, 200)
    assert plots.Linear(3, 3, 0, 10)(3) == 5  # a flat domain maps to the middle


def test_linear_scale_can_flip_for_svg_y():
    s = plots.Linear(0, 1, 300, 20)
    assert s(0) == 300 and s(1) == 20


@pytest.mark.parametrize("lo, hi, want", [
    (0, 1, [0, 0.2, 0.4, 0.6, 0.8, 1.0]),
    (0, 4410, [0, 1000, 2000, 3000, 4000]),
    (-4.2, 4.2, [-4, -2, 0, 2, 4]),
    (2.05, 2.6, [2.1, 2.2, 2.3, 2.4, 2.5, 2.6]),
])
def test_nice_ticks(lo, hi, want):
    assert plots.nice_ticks(lo, hi) == pytest.approx(want)


@given(st.floats(-1e6, 1e6), st.floats(1e-3, 1e6))
def test_nice_ticks_lie_inside_the_interval_and_are_evenly_spaced(lo, span):
    hi = lo + span
    ticks = plots.nice_ticks(lo, hi)
    assert 1 <= len(ticks) <= 12
    assert all(lo - 1e-9 * span <= t <= hi + 1e-9 * span for t in ticks)
    gaps = [b - a for a, b in zip(ticks, ticks[1:], strict=False)]
    assert all(math.isclose(g, gaps[0], rel_tol=1e-6) for g in gaps)


def test_nice_domain_widens_to_round_numbers():
    assert plots.nice_domain(2.05, 2.61) == pytest.approx((2.0, 2.7))
    lo, hi = plots.nice_domain(3.0, 3.0)
    assert lo < 3.0 < hi


def test_colour_map_ends_middle_and_clamping():
    assert plots.color_at(plots.BLUES, 0) == "#f7fbff"
    assert plots.color_at(plots.BLUES, 1) == "#08306b"
    assert plots.color_at(plots.BLUES, 2) == "#08306b"
    assert plots.color_at(plots.BLUES, float("nan")) == "#f7fbff"
    assert plots.color_at(plots.BLUES, float("inf")) == "#08306b"
    assert plots.color_at(plots.BLUES, -float("inf")) == "#f7fbff"
    assert plots.color_at(plots.RDBU, 0.5) == "#f7f7f7"
    # halfway between #000000 and #ffffff stops is #808080 (128 rounded from 127.5)
    assert plots.color_at([(0, "#000000"), (1, "#ffffff")], 0.5) == "#808080"


def test_text_colour_contrasts_with_the_fill():
    assert plots.text_color("#f7fbff") == "#000000"
    assert plots.text_color("#08306b") == "#ffffff"
    assert plots.luminance("#ffffff") == pytest.approx(1.0)
    assert plots.luminance("#000000") == 0.0


@pytest.mark.parametrize("p, want", [(1.0, 0), (0.6, 0), (0.5, 1), (0.3, 1), (0.2, 2),
                                     (1 / 27, 4), (1e-3, 7), (0.0, 7)])
def test_surprise_bins_are_whole_bits(p, want):
    assert plots.surprise_bin(p) == want


def test_char_kind():
    assert [plots.char_kind(c) for c in ".aby"] == ["boundary", "vowel", "consonant", "consonant"]


def test_heatmap_grid_geometry_colours_and_texts():
    labels = [".", "a", "b"]
    values = [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    texts = [[str(v) for v in row] for row in values]
    titles = [[f"{a} -> {b}" for b in labels] for a in labels]
    h = plots.heatmap(labels, values, texts, titles, 0, 8, plots.BLUES, "count", cell=10)
    assert len(h.cells) == 9
    first, last = h.cells[0], h.cells[-1]
    assert (first.pair, first.x, first.y) == ("..", h.left, h.top)
    assert (last.pair, last.x, last.y) == ("bb", h.left + 20, h.top + 20)
    assert first.fill == "#f7fbff" and last.fill == "#08306b"
    assert last.ink == "#ffffff" and first.ink == "#000000"
    assert h.cells[5].title == "a -> b" and h.cells[5].value_text == "5"
    assert [r.text for r in h.rows] == labels and [c.text for c in h.cols] == labels
    assert h.rows[1].y == h.top + 15  # middle of the second row
    assert h.width >= h.left + 30 and h.legend.y > h.top + 30


def test_bar_chart_sorts_and_scales_bars():
    items = [("a", 0.2, "0.2", "t"), ("b", 0.5, "0.5", "t"), ("c", 0.0, "0", "t")]
    c = plots.bar_chart(items, "P")
    assert [b.label for b in c.bars] == ["b", "a", "c"]
    assert c.bars[0].width == pytest.approx(c.plot_width * 0.5 / 0.5)  # axis ends at 0.5
    assert c.bars[1].width == pytest.approx(c.bars[0].width * 0.4)
    assert c.bars[2].width == 0
    assert c.bars[1].y > c.bars[0].y
    assert c.ticks[0].text == "0" and c.ticks[-1].pos == pytest.approx(c.left + c.plot_width)


def test_scatter_keeps_points_inside_the_frame_and_labels_them():
    pts = [(-1.0, 2.0), (3.0, -4.0), (0.0, 0.0)]
    s = plots.scatter(pts, [".", "a", "b"], "x", "y")
    f = s.frame
    assert [p.kind for p in s.points] == ["boundary", "vowel", "consonant"]
    for p in s.points:
        assert f.left <= p.cx <= f.right and f.top <= p.cy <= f.bottom
    assert s.points[1].cy > s.points[0].cy  # lower y is further down in SVG


def test_line_chart_skips_missing_values_and_draws_reference_lines():
    train = plots.Series("train", "train", [1, 2, 3], [3.0, 2.5, 2.4])
    val = plots.Series("val", "val", [1, 2, 3], [None, None, 2.45], markers=True)
    c = plots.line_chart([train, val], "step", "loss", refs=[("counts", 2.45)])
    assert len(c.lines[0].points.split()) == 3
    assert c.lines[1].points.count(",") == 1 and len(c.lines[1].markers) == 1
    assert c.refs[0].y == pytest.approx(c.lines[1].markers[0][1])
    assert c.lines[0].markers == []


@pytest.mark.parametrize("v, want", [(50, 50), (-3, 0), (120, 100), (float("nan"), 0)])
def test_percent_width(v, want):
    assert plots.percent_width(v) == want


@pytest.mark.parametrize("v, want", [(0, "0"), (0.25, "0.25"), (4000, "4000"), (12000, "12k"),
                                     (2e6, "2M"), (-2.5, "-2.5"), (1e-5, "1e-05")])
def test_fmt_tick(v, want):
    assert plots.fmt_tick(v) == want


def test_spread_markers_separates_every_pair_and_leaves_separate_ones_alone():
    import itertools
    import math

    from app.pages.plots import spread_markers

    box = (0.0, 0.0, 400.0, 300.0)
    same = [(200.0, 150.0)] * 27  # 27 points at one place
    placed = spread_markers(same, 11, box)
    assert all(math.dist(a, b) >= 22 for a, b in itertools.combinations(placed, 2))
    assert all(11 <= x <= 389 and 11 <= y <= 289 for x, y in placed)
    apart = [(50.0, 50.0), (150.0, 50.0), (100.0, 200.0)]
    assert spread_markers(apart, 11, box) == apart


def test_scatter_with_equal_axes_has_the_same_units_per_pixel():
    from app.pages.plots import scatter

    s = scatter([(0.0, 0.0), (10.0, 1.0), (5.0, 0.5)], ["a", "b", "c"], "x", "y", equal=True)
    (a, b) = s.points[:2]
    # 10 units across and 1 unit up: the same scale on both axes
    assert abs((a.y - b.y) / (b.x - a.x) - 0.1) < 1e-9


# --- hostile numbers (issue 22): any finite input gives a bounded, finite drawing ------------

finite = st.floats(allow_nan=False, allow_infinity=False)


def test_a_domain_as_wide_as_floats_gives_two_ticks_at_once():
    # It used to loop from -1e308 to 1e308 in steps of 1 (the span overflowed to inf).
    assert plots.nice_ticks(-1e308, 1e308) == [-1e308, 1e308]
    assert plots.nice_domain(-1e308, 1e308) == (-1e308, 1e308)
    assert plots.Linear(-1e308, 1e308, 0, 100)(0.0) == 50.0


@pytest.mark.parametrize("lo, hi", [(0.0, 5e-324), (1e300, 1e300 * (1 + 1e-15)), (-1e-300, 0.0),
                                    (1e308, 1.7e308), (-1.7e308, 1.7e308)])
def test_extreme_intervals_give_few_finite_ticks(lo, hi):
    ticks = plots.nice_ticks(lo, hi)
    assert 1 <= len(ticks) <= plots.MAX_TICKS
    assert all(math.isfinite(t) and lo <= t <= hi for t in ticks)


@given(finite, finite)
def test_any_two_finite_numbers_give_at_most_max_ticks_inside(a, b):
    lo, hi = min(a, b), max(a, b)
    ticks = plots.nice_ticks(a, b)
    assert 1 <= len(ticks) <= plots.MAX_TICKS
    span = hi - lo if math.isfinite(hi - lo) else math.inf
    slack = 1e-9 * span if math.isfinite(span) else 0.0
    assert all(math.isfinite(t) and lo - slack <= t <= hi + slack for t in ticks)
    d0, d1 = plots.nice_domain(a, b)  # covers [lo, hi] (to 1e-9 of a step, as it rounds)
    assert math.isfinite(d0) and math.isfinite(d1) and d0 <= lo + slack and hi - slack <= d1


@given(st.lists(st.tuples(finite, finite), min_size=1, max_size=20))
def test_a_line_chart_of_any_finite_numbers_stays_inside_its_frame(points):
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    chart = plots.line_chart([plots.Series("s", "s", xs, ys, markers=True)], "x", "y")
    f = chart.frame
    assert len(f.x_ticks) <= plots.MAX_TICKS and len(f.y_ticks) <= plots.MAX_TICKS
    for cx, cy, _ in chart.lines[0].markers:
        assert f.left - 1e-6 <= cx <= f.right + 1e-6 and f.top - 1e-6 <= cy <= f.bottom + 1e-6
