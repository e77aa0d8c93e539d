"""The geometry of a name's era chart: P(decade, sex | name) as bars, 14 decades side by side,
a girls' and a boys' bar in each (templates/_era.html draws it)."""

from __future__ import annotations

from dataclasses import dataclass

from app.data.decades import DECADES, SEX_WORDS, SEXES
from app.domain.era import Era
from app.pages.plots import Linear, fmt_tick, nice_domain, nice_ticks

WIDTH, HEIGHT = 560.0, 190.0
LEFT, RIGHT, TOP, BOTTOM = 40.0, 8.0, 10.0, 42.0
FILL = {"F": "#c2185b", "M": "#1f5fa8"}  # girls, boys: 4.5:1 or more against white


@dataclass(frozen=True)
class EraBar:
    x: float
    y: float
    width: float
    height: float
    fill: str
    title: str  # '1920s, girls: 38.2%'


@dataclass(frozen=True)
class EraChart:
    width: float
    height: float
    left: float
    top: float
    bottom: float  # y of the axis
    bars: list[EraBar]
    ticks: list[tuple[float, str]]  # (y, label)
    labels: list[tuple[float, str]]  # (x, '1880') under each decade
    label: str  # the chart's text alternative


def era_chart(e: Era) -> EraChart:
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    top_value = max(max(row) for row in e.posterior)
    hi = nice_domain(0.0, max(top_value, 1e-9))[1]
    y = Linear(0.0, hi, TOP + plot_h, TOP)
    slot = plot_w / len(DECADES)
    bar_w = slot * 0.4
    bars = []
    for s, sex in enumerate(SEXES):
        for d, start in enumerate(DECADES):
            p = e.posterior[s][d]
            x = LEFT + d * slot + slot * 0.1 + s * bar_w
            bars.append(EraBar(round(x, 2), round(y(p), 2), round(bar_w, 2),
                               round(TOP + plot_h - y(p), 2), FILL[sex],
                               f"{start}s, {SEX_WORDS[sex]}: {100 * p:.1f}%"))
    ticks = [(round(y(v), 2), f"{fmt_tick(100 * v)}%") for v in nice_ticks(0.0, hi, 4)]
    labels = [(round(LEFT + (d + 0.5) * slot, 2), str(start)) for d, start in enumerate(DECADES)]
    return EraChart(WIDTH, HEIGHT, LEFT, TOP, TOP + plot_h, bars, ticks, labels,
                    f"P(decade, sex | {e.name}): {e.sentence}")
