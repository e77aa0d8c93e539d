"""Plot geometry for the SVG templates: scales, ticks, colour maps and the shapes of each chart.

Pure Python (no web imports, no torch): every function takes numbers and returns dataclasses of
SVG coordinates, colours and texts; the templates only draw them. Units are SVG user units
(pixels at 100% zoom); the templates scale the whole drawing with `viewBox`.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass

# Colour maps as (position in [0, 1], '#rrggbb') stops, interpolated linearly in RGB.
# Sequential: ColorBrewer "Blues", the map of the classic lecture's bigram figure.
BLUES = [(0.0, "#f7fbff"), (0.25, "#c6dbef"), (0.5, "#6baed6"), (0.75, "#2171b5"),
         (1.0, "#08306b")]
# Diverging: ColorBrewer "RdBu" (red = lower, white = equal, blue = higher).
RDBU = [(0.0, "#b2182b"), (0.25, "#ef8a62"), (0.5, "#f7f7f7"), (0.75, "#67a9cf"),
        (1.0, "#2166ac")]
# Surprise of a letter, -log2 P in bits, in whole-bit bins: 0-1 bit (expected) ... 7+ bits.
SURPRISE_BINS = 8
MAX_TICKS = 12  # ticks on an axis, at most (nice_ticks asks for about 5)

VOWELS = frozenset("aeiou")


# --- scales and ticks ---------------------------------------------------------------------


@dataclass(frozen=True)
class Linear:
    """Maps the domain [d0, d1] linearly onto the range [r0, r1]."""

    d0: float
    d1: float
    r0: float
    r1: float

    def __call__(self, v: float) -> float:
        if self.d1 == self.d0:
            return (self.r0 + self.r1) / 2
        # Halves: d1 - d0 overflows for a domain wider than the largest float (-1e308..1e308).
        t = (v / 2 - self.d0 / 2) / (self.d1 / 2 - self.d0 / 2)
        return self.r0 + t * (self.r1 - self.r0)


def nice_step(span: float, n: int) -> float:
    """1, 2 or 5 times a power of ten, the nearest (geometrically) to span / n (as d3 does)."""
    if span <= 0 or not math.isfinite(span):
        return 1.0
    raw = span / max(1, n)
    mag = 10.0 ** math.floor(math.log10(raw)) if raw >= 1e-300 else 0.0
    if mag == 0.0:  # a subnormal span: no power of ten to round to
        return raw
    err = raw / mag
    for m, cut in ((10, math.sqrt(50)), (5, math.sqrt(10)), (2, math.sqrt(2))):
        if err >= cut:
            return m * mag
    return mag


def _tick_range(lo: float, hi: float, n: int) -> tuple[float, int, int] | None:
    """(step, first, last): the ticks are i * step for i in first..last, or None when the
    interval cannot be divided into round steps (wider than the largest float, narrower than
    1e-290, or so narrow around a large value that lo / step is not a number): the caller
    falls back to the ends."""
    span = hi - lo
    if not math.isfinite(span) or span < 1e-290:  # near subnormals, rounding is not exact
        return None
    step = nice_step(span, n)
    if step <= 0 or not (math.isfinite(lo / step) and math.isfinite(hi / step)):
        return None
    return step, math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9)


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Round tick values covering [lo, hi] (about n of them, at most MAX_TICKS, all inside
    the interval). Their number is computed, never counted by a loop over the interval: any
    two finite numbers give at most MAX_TICKS ticks at once (1e308 wide, or 1e-300)."""
    if hi < lo:
        lo, hi = hi, lo
    if hi == lo:
        return [lo]
    got = _tick_range(lo, hi, n)
    if got is None or not 1 <= got[2] - got[1] + 1 <= MAX_TICKS:
        return [lo, hi]
    step, first, last = got
    digits = max(12, 3 - math.floor(math.log10(step)))  # float noise off, tiny steps kept
    return [round(i * step, digits) + 0.0 for i in range(first, last + 1)]


def nice_domain(lo: float, hi: float, n: int = 5) -> tuple[float, float]:
    """[lo, hi] widened to the nearest round ticks (a small pad when lo == hi); as it is when
    it cannot be divided into round steps (see _tick_range)."""
    if hi < lo:
        lo, hi = hi, lo
    if hi == lo:
        pad, top = abs(lo) * 0.1 or 1.0, sys.float_info.max
        lo, hi = max(-top, lo - pad), min(top, hi + pad)
    got = _tick_range(lo, hi, n)
    if got is None:
        return lo, hi
    step = got[0]
    wide = math.floor(lo / step + 1e-9) * step, math.ceil(hi / step - 1e-9) * step
    return wide if all(math.isfinite(v) for v in wide) else (lo, hi)


def fmt_tick(v: float) -> str:
    """Short tick text: 0.25, 1.5, 100, 12k, 1.2M, 1e-05."""
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:g}M"
    if a >= 1e4:
        return f"{v / 1e3:g}k"
    if a < 1e-3:
        return f"{v:.0e}"
    return f"{v:.6g}"


# --- colours --------------------------------------------------------------------------------


def _rgb(hex_color: str) -> tuple[int, int, int]:
    h = hex_color.lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


def color_at(stops: list[tuple[float, str]], t: float) -> str:
    """The colour at t in [0, 1] (clamped) of a map given as stops."""
    t = 0.0 if math.isnan(t) else min(1.0, max(0.0, t))  # +-inf clamp to the ends
    for (p0, c0), (p1, c1) in zip(stops, stops[1:], strict=False):
        if t <= p1:
            f = 0.0 if p1 == p0 else (t - p0) / (p1 - p0)
            a, b = _rgb(c0), _rgb(c1)
            return "#" + "".join(f"{round(x + (y - x) * f):02x}" for x, y in zip(a, b, strict=True))
    return stops[-1][1]


def luminance(hex_color: str) -> float:
    """WCAG relative luminance of a colour, 0 (black) to 1 (white)."""

    def channel(c: int) -> float:
        s = c / 255
        return s / 12.92 if s <= 0.03928 else ((s + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in _rgb(hex_color))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def text_color(fill: str) -> str:
    """Black or white, whichever contrasts more with `fill` (WCAG contrast ratio)."""
    lum = luminance(fill)
    return "#000000" if (lum + 0.05) / 0.05 >= 1.05 / (lum + 0.05) else "#ffffff"


def surprise_bin(prob: float) -> int:
    """0..SURPRISE_BINS-1: whole bits of surprise -log2(prob); 0 for a letter the model expects."""
    if prob <= 0:
        return SURPRISE_BINS - 1
    bits = -math.log2(min(prob, 1.0))
    return min(SURPRISE_BINS - 1, int(bits))


def char_kind(ch: str) -> str:
    """'boundary' for '.', 'vowel' for a e i o u, 'consonant' otherwise (y included)."""
    if ch == ".":
        return "boundary"
    return "vowel" if ch in VOWELS else "consonant"


# --- legend ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tick:
    pos: float  # SVG coordinate along the axis
    text: str


@dataclass(frozen=True)
class Legend:
    """A horizontal colour bar: a gradient `width` wide with ticks under it."""

    gradient_id: str
    x: float
    y: float
    width: float
    height: float
    stops: list[tuple[float, str]]  # (offset 0..1, colour) for <linearGradient>
    ticks: list[Tick]
    title: str


def legend(gradient_id: str, vmin: float, vmax: float, stops: list[tuple[float, str]],
           x: float, y: float, width: float, title: str, height: float = 12) -> Legend:
    scale = Linear(vmin, vmax, x, x + width)
    ticks = [Tick(scale(v), fmt_tick(v)) for v in nice_ticks(vmin, vmax, 5)]
    return Legend(gradient_id, x, y, width, height, stops, ticks, title)


# --- heatmap --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    row: str
    col: str
    x: float
    y: float
    size: float
    fill: str
    ink: str  # text colour readable on fill
    value_text: str
    title: str  # the tooltip (<title>)

    @property
    def pair(self) -> str:
        return self.row + self.col


@dataclass(frozen=True)
class AxisLabel:
    text: str
    x: float
    y: float


@dataclass(frozen=True)
class Heatmap:
    width: float
    height: float
    cell: float
    left: float  # x of the grid's left edge
    top: float  # y of the grid's top edge
    cells: list[Cell]
    rows: list[AxisLabel]  # one per row, left of the grid
    cols: list[AxisLabel]  # one per column, above the grid
    legend: Legend
    x_label: AxisLabel
    y_label: AxisLabel
    show_text: bool  # pair and value in each cell (off for small heatmaps)


def heatmap(
    labels: list[str],
    values: list[list[float]],
    value_texts: list[list[str]],
    titles: list[list[str]],
    vmin: float,
    vmax: float,
    stops: list[tuple[float, str]],
    legend_title: str,
    gradient_id: str = "heat",
    cell: float = 36,
    show_text: bool = True,
    axis_titles: tuple[str, str] = ("next letter", "current letter"),
) -> Heatmap:
    """A square grid: rows = current letter (top to bottom), columns = next letter.

    `values` picks the colour (linear from vmin to vmax along `stops`); `value_texts` are the
    numbers printed under each pair; `titles` the tooltips.
    """
    n = len(labels)
    left, top = 44.0, 44.0
    size = n * cell
    color = Linear(vmin, vmax, 0.0, 1.0)
    cells = []
    for i, a in enumerate(labels):
        for j, b in enumerate(labels):
            fill = color_at(stops, color(values[i][j]))
            cells.append(Cell(a, b, left + j * cell, top + i * cell, cell, fill, text_color(fill),
                              value_texts[i][j], titles[i][j]))
    rows = [AxisLabel(a, left - 8, top + (i + 0.5) * cell) for i, a in enumerate(labels)]
    cols = [AxisLabel(b, left + (j + 0.5) * cell, top - 8) for j, b in enumerate(labels)]
    leg_width = min(size, 320.0)
    leg = legend(gradient_id, vmin, vmax, stops, left, top + size + 34, leg_width, legend_title)
    return Heatmap(
        width=left + size + 8,
        height=top + size + 34 + leg.height + 40,
        cell=cell, left=left, top=top, cells=cells, rows=rows, cols=cols, legend=leg,
        x_label=AxisLabel(axis_titles[0], left + size / 2, 14),
        y_label=AxisLabel(axis_titles[1], 14, top + size / 2),
        show_text=show_text,
    )


# --- bar chart ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    value_text: str
    title: str
    x: float
    y: float
    width: float
    height: float
    fill: str


@dataclass(frozen=True)
class BarChart:
    width: float
    height: float
    left: float
    top: float
    plot_width: float
    bars: list[Bar]
    ticks: list[Tick]
    x_label: AxisLabel


def bar_chart(items: list[tuple[str, float, str, str]], x_label: str, width: float = 640,
              bar: float = 18, gap: float = 4) -> BarChart:
    """Horizontal bars, sorted from the largest value down: items are (label, value, text, title).

    Values must be >= 0; the axis starts at 0.
    """
    items = sorted(items, key=lambda it: (-it[1], it[0]))
    left, top, right = 36.0, 10.0, 110.0  # room right of a full bar for '0.123 (count 0)'
    plot_width = width - left - right
    vmax = max((v for _, v, _, _ in items), default=1.0) or 1.0
    hi = nice_domain(0.0, vmax)[1]
    scale = Linear(0.0, hi, left, left + plot_width)
    bars = []
    for k, (label, value, text, title) in enumerate(items):
        w = scale(value) - left
        bars.append(Bar(label, value, text, title, left, top + k * (bar + gap), w, bar,
                        color_at(BLUES, 0.35 + 0.55 * (value / hi))))
    bottom = top + len(items) * (bar + gap)
    ticks = [Tick(scale(v), fmt_tick(v)) for v in nice_ticks(0.0, hi, 5)]
    return BarChart(width=width, height=bottom + 44, left=left, top=top, plot_width=plot_width,
                    bars=bars, ticks=ticks,
                    x_label=AxisLabel(x_label, left + plot_width / 2, bottom + 38))


# --- scatter plot ---------------------------------------------------------------------------


MARKER_R = 11.0  # radius of a point's labelled marker (the letter is drawn inside it)


@dataclass(frozen=True)
class Point:
    label: str
    kind: str  # css class: vowel, consonant, boundary
    x: float  # where the point is (SVG coordinates)
    y: float
    cx: float  # where its labelled marker is: the point itself, or moved aside so that no two
    cy: float  # markers overlap (then a leader line joins the marker to the point)
    title: str

    @property
    def moved(self) -> bool:
        return math.hypot(self.cx - self.x, self.cy - self.y) > 0.5


def spread_markers(xy: list[tuple[float, float]], r: float, box: tuple[float, float, float, float],
                   gap: float = 2.0, rounds: int = 400) -> list[tuple[float, float]]:
    """Marker centres near the points `xy`, no two closer than 2r + gap, inside `box`.

    Deterministic relaxation: overlapping markers push each other apart along the line between
    them (points at the same place along a fixed direction per pair), a weak spring pulls each
    back towards its point, and markers stay in the box (x0, y0, x1, y1).
    """
    x0, y0, x1, y1 = box
    need = 2 * r + gap
    pos = [[x, y] for x, y in xy]
    n = len(pos)
    for it in range(rounds):
        moved = False
        for i in range(n):
            for j in range(i + 1, n):
                dx, dy = pos[j][0] - pos[i][0], pos[j][1] - pos[i][1]
                d = math.hypot(dx, dy)
                if d >= need:
                    continue
                if d < 1e-6:
                    angle = 2.399963 * (i * n + j)  # golden angle: distinct, repeatable
                    dx, dy, d = math.cos(angle), math.sin(angle), 1.0
                push = (need - d) / 2 + 0.01
                ux, uy = dx / d, dy / d
                pos[i][0] -= ux * push
                pos[i][1] -= uy * push
                pos[j][0] += ux * push
                pos[j][1] += uy * push
                moved = True
        pull = 0.1 if it < rounds // 2 else 0.0  # the last half only separates
        for k in range(n):
            pos[k][0] += pull * (xy[k][0] - pos[k][0])
            pos[k][1] += pull * (xy[k][1] - pos[k][1])
            pos[k][0] = min(x1 - r, max(x0 + r, pos[k][0]))
            pos[k][1] = min(y1 - r, max(y0 + r, pos[k][1]))
        if not moved and it >= rounds // 2:
            break
    return [(x, y) for x, y in pos]


@dataclass(frozen=True)
class Frame:
    """Plot area and axes shared by the scatter plot and the line chart."""

    width: float
    height: float
    left: float
    top: float
    right: float  # x of the plot area's right edge
    bottom: float  # y of the plot area's bottom edge
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    x_label: AxisLabel
    y_label: AxisLabel


def _frame(xlo: float, xhi: float, ylo: float, yhi: float, width: float, height: float,
           x_label: str, y_label: str, equal: bool = False) -> tuple[Frame, Linear, Linear]:
    """The plot area and its scales; equal=True gives both axes the same units per pixel (the
    shorter domain widened around its centre), so that distances on screen mean something."""
    left, top, right_pad, bottom_pad = 64.0, 16.0, 16.0, 52.0
    right, bottom = width - right_pad, height - bottom_pad
    xlo, xhi = nice_domain(xlo, xhi)
    ylo, yhi = nice_domain(ylo, yhi)
    if equal:
        per_px = max((xhi - xlo) / (right - left), (yhi - ylo) / (bottom - top))
        xc, yc = (xlo + xhi) / 2, (ylo + yhi) / 2
        xlo, xhi = xc - per_px * (right - left) / 2, xc + per_px * (right - left) / 2
        ylo, yhi = yc - per_px * (bottom - top) / 2, yc + per_px * (bottom - top) / 2
    sx = Linear(xlo, xhi, left, right)
    sy = Linear(ylo, yhi, bottom, top)  # SVG y grows downwards
    frame = Frame(
        width=width, height=height, left=left, top=top, right=right, bottom=bottom,
        x_ticks=[Tick(sx(v), fmt_tick(v)) for v in nice_ticks(xlo, xhi)],
        y_ticks=[Tick(sy(v), fmt_tick(v)) for v in nice_ticks(ylo, yhi)],
        x_label=AxisLabel(x_label, (left + right) / 2, height - 10),
        y_label=AxisLabel(y_label, 16, (top + bottom) / 2),
    )
    return frame, sx, sy


@dataclass(frozen=True)
class Scatter:
    frame: Frame
    points: list[Point]
    marker_r: float = MARKER_R


def scatter(points: list[tuple[float, float]], labels: list[str], x_label: str, y_label: str,
            width: float = 640, height: float = 520, equal: bool = False) -> Scatter:
    """One labelled marker per (x, y), coloured by char_kind of its label.

    Markers that would overlap are moved apart (spread_markers); a moved marker keeps a small dot
    at its true place and a leader line to it, so nothing hides and nothing lies.
    """
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    # Pad the data range so that labelled circles at the extremes stay inside the frame.
    px, py = 0.06 * (max(xs) - min(xs)), 0.06 * (max(ys) - min(ys))
    frame, sx, sy = _frame(min(xs) - px, max(xs) + px, min(ys) - py, max(ys) + py, width, height,
                           x_label, y_label, equal)
    at = [(sx(x), sy(y)) for x, y in points]
    placed = spread_markers(at, MARKER_R, (frame.left, frame.top, frame.right, frame.bottom))
    pts = [
        Point(lab, char_kind(lab), ax, ay, cx, cy, f"{lab}: ({x:.3f}, {y:.3f})")
        for (x, y), (ax, ay), (cx, cy), lab in zip(points, at, placed, labels, strict=True)
    ]
    return Scatter(frame, pts)


# --- line chart -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    name: str
    css: str  # class for the stroke colour
    points: str  # SVG polyline "x,y x,y ..."
    markers: list[tuple[float, float, str]]  # (cx, cy, tooltip) at each data point


@dataclass(frozen=True)
class RefLine:
    name: str
    y: float
    x1: float
    x2: float
    text: str


@dataclass(frozen=True)
class LineChart:
    frame: Frame
    lines: list[Line]
    refs: list[RefLine]


@dataclass
class Series:
    name: str
    css: str
    xs: list[float]
    ys: list[float | None]  # None: no value at that x (skipped)
    markers: bool = False

    def pairs(self) -> list[tuple[float, float]]:
        return [(x, y) for x, y in zip(self.xs, self.ys, strict=True)
                if y is not None and math.isfinite(y)]


def line_chart(series: list[Series], x_label: str, y_label: str,
               refs: list[tuple[str, float]] | None = None,
               width: float = 640, height: float = 320) -> LineChart:
    """Polylines of each series against shared axes, plus horizontal reference lines."""
    refs = refs or []
    pairs = [p for s in series for p in s.pairs()]
    xs = [x for x, _ in pairs] or [0.0, 1.0]
    ys = [y for _, y in pairs] + [v for _, v in refs] or [0.0, 1.0]
    frame, sx, sy = _frame(min(xs), max(xs), min(ys), max(ys), width, height, x_label, y_label)
    lines = []
    for s in series:
        pts = s.pairs()
        lines.append(Line(
            s.name, s.css,
            " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts),
            [(sx(x), sy(y), f"{s.name}, step {x:g}: {y:.4f}") for x, y in pts] if s.markers
            else [],
        ))
    ref_lines = [RefLine(name, sy(v), frame.left, frame.right, f"{name}: {v:.4f}")
                 for name, v in refs]
    return LineChart(frame, lines, ref_lines)


# --- small bars -----------------------------------------------------------------------------


def percent_width(value: float, width: float = 100.0) -> float:
    """Width of a 0..100 percentage bar (clamped; NaN draws nothing)."""
    if not math.isfinite(value):
        return 0.0
    return width * min(100.0, max(0.0, value)) / 100.0
