"""The score page's history of each name: births per year and sex in the US records, as a line
chart (its geometry here, pure, in app/plots.py's style: templates/_history.html draws it) with
the peaks named, and the births by decade as its text alternative."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from app.lm.vocab import InvalidName
from app.pages import plots
from app.store import history
from app.store.history import HistoryUnavailable, NameHistory

LINE_CSS = {"F": "girls", "M": "boys"}  # stroke colour and dash (templates/_history.html)
X_PAD = 14.0  # the years start this far inside the frame: 1880 under the plot, clear of y's 0
LABEL_GAP = 8.0  # from a peak's marker to its label
LABEL_HEIGHT = 14.0  # two peak labels closer than this, on one side, are moved apart


@dataclass(frozen=True)
class PeakMark:
    cx: float  # the marker, at the peak year and its births
    cy: float
    x: float  # the label "1921: 73,982", beside the marker, inside the plot area
    y: float
    anchor: str  # text-anchor: start (label right of the marker) or end (left of it)
    text: str
    title: str  # "peaked in 1921 with 73,982 girls"


@dataclass(frozen=True)
class HistoryLine:
    sex: str
    css: str
    word: str  # girls, boys: the legend's text
    points: str  # SVG polyline "x,y x,y ...", one point per year
    peak: PeakMark
    legend_x: float  # where the legend's sample of this line starts (above the plot area)
    legend_y: float


@dataclass(frozen=True)
class HistoryChart:
    frame: plots.Frame
    lines: list[HistoryLine]


def history_chart(h: NameHistory, width: float = 420, height: float = 240) -> HistoryChart:
    """Births per year of each sex the name was given to, on shared axes: x the table's years
    (exactly, X_PAD inside the frame), y from 0 to a round number above the highest peak; each
    peak marked and labelled. For a name in the records only (h.in_records)."""
    left, top, right, bottom = 60.0, 30.0, width - 14.0, height - 40.0
    hi = plots.nice_domain(0.0, float(max(s.peak_births for s in h.sexes)), 4)[1]
    sx = plots.Linear(h.first_year, h.last_year, left + X_PAD, right - X_PAD)
    sy = plots.Linear(0.0, hi, bottom, top)  # SVG y grows downwards
    frame = plots.Frame(
        width=width, height=height, left=left, top=top, right=right, bottom=bottom,
        x_ticks=[plots.Tick(sx(v), f"{v:.0f}") for v in plots.nice_ticks(
            h.first_year, h.last_year, 6)],
        y_ticks=[plots.Tick(sy(v), births_tick(v)) for v in plots.nice_ticks(0.0, hi, 4)],
        x_label=plots.AxisLabel("year", (left + right) / 2, height - 6),
        y_label=plots.AxisLabel("births per year", 14, (top + bottom) / 2),
    )
    lines, taken = [], []
    for k, s in enumerate(h.sexes):
        points = " ".join(f"{sx(h.first_year + i):.1f},{sy(n):.1f}"
                          for i, n in enumerate(s.counts))
        lines.append(HistoryLine(s.sex, LINE_CSS[s.sex], s.word, points,
                                 _peak(s, round(sx(s.peak_year), 1), round(sy(s.peak_births), 1),
                                       frame, taken),
                                 left + k * 90.0, 14.0))
    return HistoryChart(frame, lines)


def births_tick(v: float) -> str:
    """500, 5k, 12.5k, 1.5M: births on the y axis."""
    if v >= 1e6:
        return f"{v / 1e6:g}M"
    return f"{v / 1e3:g}k" if v >= 1e3 else f"{v:g}"


def _peak(s: history.SexHistory, cx: float, cy: float, f: plots.Frame,
          taken: list[tuple[str, float]]) -> PeakMark:
    """The peak's marker (on its polyline's point: both to 0.1 unit) and its label: on the
    side of the marker with more room, inside the plot area, below a label already on that
    side that it would overlap."""
    anchor = "start" if cx < (f.left + f.right) / 2 else "end"
    x = cx + LABEL_GAP if anchor == "start" else cx - LABEL_GAP
    y = min(max(cy, f.top + LABEL_HEIGHT / 2), f.bottom - LABEL_HEIGHT / 2)
    for side, other in taken:
        if side == anchor and abs(other - y) < LABEL_HEIGHT:
            y = min(other + LABEL_HEIGHT, f.bottom - LABEL_HEIGHT / 2)
    taken.append((anchor, y))
    return PeakMark(cx, cy, x, y, anchor, f"{s.peak_year}: {s.peak_births:,}",
                    f"peaked {s.peak}")


@dataclass(frozen=True)
class Decade:
    start: int  # 1880: the 1880s
    births: dict[str, int]  # sex -> births in the decade's years of the table


def by_decade(h: NameHistory) -> list[Decade]:
    """The births of each sex per decade: the chart's text alternative, one row per decade."""
    out = []
    for start in range(h.first_year - h.first_year % 10, h.last_year + 1, 10):
        lo, hi = max(start, h.first_year), min(start + 9, h.last_year)
        out.append(Decade(start, {s.sex: sum(s.counts[lo - h.first_year:hi - h.first_year + 1])
                                  for s in h.sexes}))
    return out


@dataclass(frozen=True)
class Panel:
    """One typed name's history on the score page: a chart, or only its sentence ("never
    given ...")."""

    name: str  # as typed
    history: NameHistory
    chart: HistoryChart | None  # None: not in the records
    decades: list[Decade]


def panel(h: NameHistory) -> Panel:
    if not h.in_records:
        return Panel(h.name, h, None, [])
    return Panel(h.name, h, history_chart(h), by_decade(h))


async def panels(path: Path, names: list[str]) -> tuple[list[Panel], str | None]:
    """The history of each name (one per normalised name, in the order typed), or no panels
    and the reason when the table cannot be used (not installed, damaged). A name outside the
    alphabet has none: the score table says once what is wrong with it."""
    out, seen = [], set()
    for name in names:
        try:
            norm = history.checked_name(name)
        except InvalidName:
            continue
        if norm in seen:
            continue
        seen.add(norm)
        try:
            out.append(panel(await history.lookup(path, name)))
        except HistoryUnavailable as e:
            return [], str(e)
    return out, None
