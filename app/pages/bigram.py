"""The bigram heatmap, one row's next-letter distribution, downloads, and two models compared."""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from app.domain.services import bigram_table
from app.pages import plots
from app.pages.common import has_bigram_table, pick_model
from app.serving.pagecache import cacheable
from app.serving.worker import model_thread
from app.store.registry import LoadedModel, Registry
from app.web.deps import RegistryDep
from app.web.errors import USER_ERRORS, BadInput, error_page, page_error
from app.web.templating import fmt_prob, render

router = APIRouter(tags=["pages"])

VIEWS = {"probs": "probabilities", "counts": "counts", "logprobs": "log-probabilities"}


@dataclass(frozen=True)
class Table:
    """A bigram model's table: labels, counts (None for the neural bigram), probabilities."""

    model: LoadedModel
    labels: list[str]
    counts: list[list[int]] | None
    probs: list[list[float]]

    @classmethod
    def of(cls, m: LoadedModel) -> Table:
        labels, counts, probs = bigram_table(m)
        return cls(m, labels, counts, probs)

    def tooltip(self, i: int, j: int) -> str:
        text = f"{self.labels[i]} -> {self.labels[j]}: P = {fmt_prob(self.probs[i][j])}"
        return text if self.counts is None else f"{text}, count {self.counts[i][j]}"

    def row(self, letter: str) -> int:
        if letter not in self.labels:
            raise BadInput(f"row must be one of the model's letters "
                           f"({''.join(self.labels)}), got {letter!r}.")
        return self.labels.index(letter)


def log(p: float) -> float:
    return math.log(p) if p > 0 else -math.inf


def table_heatmap(t: Table, view: str, gradient_id: str = "heat", cell: float = 36,
                  show_text: bool = True, pmax: float | None = None) -> plots.Heatmap:
    """The heatmap of one view: counts, probs (3 digits) or logprobs, coloured by that value.

    `pmax` fixes the top of the probability colour scale (to compare two tables by eye).
    """
    n = range(len(t.labels))
    if view == "counts":
        values = [[float(c) for c in row] for row in t.counts]
        texts = [[str(c) for c in row] for row in t.counts]
        vmin, vmax, title = 0.0, max(max(r) for r in values), "count of the pair"
    elif view == "logprobs":
        values = [[log(p) for p in row] for row in t.probs]
        texts = [[f"{v:.2f}" for v in row] for row in values]
        finite = [v for row in values for v in row if math.isfinite(v)]
        vmin, vmax, title = min(finite), 0.0, "log P(next | current)"
    else:
        values = t.probs
        texts = [[f"{p:.3f}" for p in row] for row in t.probs]
        vmin, vmax, title = 0.0, pmax or max(max(r) for r in values), "P(next | current)"
    titles = [[t.tooltip(i, j) for j in n] for i in n]
    return plots.heatmap(t.labels, values, texts, titles, vmin, vmax, plots.BLUES, title,
                         gradient_id=gradient_id, cell=cell, show_text=show_text)


def row_chart(t: Table, letter: str, view: str = "probs") -> plots.BarChart:
    """One row as bars: its counts in the counts view, its probabilities otherwise.

    A pair never seen in the data says so ("count 0") next to its smoothed probability.
    """
    i = t.row(letter)
    if view == "counts" and t.counts is not None:
        items = [(b, float(t.counts[i][j]), f"{t.counts[i][j]:,}", t.tooltip(i, j))
                 for j, b in enumerate(t.labels)]
        return plots.bar_chart(items, f"count of {letter!r} followed by the letter")

    def text(j: int) -> str:
        unseen = t.counts is not None and t.counts[i][j] == 0
        return f"{t.probs[i][j]:.3f}" + (" (count 0)" if unseen else "")

    items = [(b, t.probs[i][j], text(j), t.tooltip(i, j)) for j, b in enumerate(t.labels)]
    return plots.bar_chart(items, f"P(next letter | {letter!r})")


@router.get("/bigram", response_class=HTMLResponse, summary="Bigram heatmap page")
@cacheable
@model_thread
def show_bigram(request: Request, registry: RegistryDep, model: str = "", view: str = "probs",
                row: str | None = None):
    """The 27x27 heatmap of a bigram model (or one row's next-letter distribution)."""
    ctx = {"nav": "bigram", "title": "Bigram heatmap", "view": view, "row": row,
           "views": VIEWS, "bigram_models": [m for m in registry.models.values()
                                            if has_bigram_table(m)]}
    try:
        t = Table.of(pick_model(registry, model, has_bigram_table, "bigram table"))
        if view not in VIEWS:
            raise BadInput(f"view must be one of {', '.join(VIEWS)}, got {view!r}.")
        ctx["note"] = None
        if view == "counts" and t.counts is None:
            ctx["note"] = (f"{t.model.name} has no counts: it is {t.model.kind.title}, whose "
                           "table is learned by gradient descent. Showing probabilities "
                           "instead.")
            ctx["view"] = view = "probs"
        ctx.update(m=t.model, table=t, heat=table_heatmap(t, view),
                   bars=row_chart(t, row, view) if row is not None else None)
    except USER_ERRORS as e:
        err = page_error(e, registry)
        return render(request, "bigram.html", {**ctx, "error": err}, err.status)
    return render(request, "bigram.html", ctx)


@router.get("/bigram/table.csv", summary="Bigram table as CSV")
@cacheable
@model_thread
def download_bigram_csv(request: Request, registry: RegistryDep, model: str = ""):
    """One row per pair: current, next, count (blank for the neural bigram), probability."""
    try:
        t = Table.of(pick_model(registry, model, has_bigram_table, "bigram table"))
    except USER_ERRORS as e:
        return error_page(request, page_error(e, registry))
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["current", "next", "count", "prob", "log_prob"])
    for i, a in enumerate(t.labels):
        for j, b in enumerate(t.labels):
            count = "" if t.counts is None else t.counts[i][j]
            w.writerow([a, b, count, f"{t.probs[i][j]:.8g}", f"{log(t.probs[i][j]):.8g}"])
    return Response(out.getvalue(), media_type="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{t.model.name}.csv"'})


@router.get("/bigram/table.json", summary="Bigram table as JSON")
@cacheable
@model_thread
def download_bigram_json(request: Request, registry: RegistryDep, model: str = ""):
    """labels, counts (null for the neural bigram) and probs[current][next]."""
    try:
        t = Table.of(pick_model(registry, model, has_bigram_table, "bigram table"))
    except USER_ERRORS as e:
        return error_page(request, page_error(e, registry))
    return JSONResponse(
        {"model": t.model.name, "type": t.model.meta.model_type, "labels": t.labels,
         "counts": t.counts, "probs": t.probs},
        headers={"Content-Disposition": f'attachment; filename="{t.model.name}.json"'})


# --- two models compared -------------------------------------------------------------------


MIN_COUNT = 20  # times a pair is seen in one model's data before its change is listed
MIN_PROB = 0.01  # the bar without counts (a neural bigram): P >= 1% in either model


@dataclass(frozen=True)
class Change:
    pair: str
    p_a: float
    p_b: float
    count_a: int | None  # None: the model has no counts (a neural bigram)
    count_b: int | None

    @property
    def log_ratio(self) -> float:
        return log(self.p_b) - log(self.p_a)


@dataclass(frozen=True)
class Comparison:
    a: Table
    b: Table
    heat: plots.Heatmap
    rises: list[Change]  # most more likely in b, among the pairs with evidence (`evident`)
    falls: list[Change]
    by_counts: bool  # the pairs are picked by their counts (else by P >= MIN_PROB)


def evident(c: Change, by_counts: bool) -> bool:
    """A change to list: a pair seen MIN_COUNT times in either model's data (when a model has
    counts), else one with P >= MIN_PROB in either. Without this the lists were smoothing:
    'xg', 'qb'..., never seen in either era's names, differ only by each era's add-one share."""
    if by_counts:
        return max(c.count_a or 0, c.count_b or 0) >= MIN_COUNT
    return max(c.p_a, c.p_b) >= MIN_PROB


def compare_tables(a: Table, b: Table, top: int = 8) -> Comparison:
    """log P_b - log P_a over the letters both models know, on a diverging colour map."""
    labels = [x for x in a.labels if x in b.labels]
    ia = [a.labels.index(x) for x in labels]
    ib = [b.labels.index(x) for x in labels]
    pa = [[a.probs[i][j] for j in ia] for i in ia]
    pb = [[b.probs[i][j] for j in ib] for i in ib]
    diff = [[log(y) - log(x) for x, y in zip(ra, rb, strict=True)]
            for ra, rb in zip(pa, pb, strict=True)]
    finite = [abs(v) for row in diff for v in row if math.isfinite(v)]
    span = max(finite, default=1.0) or 1.0
    texts = [[f"{v:+.2f}" for v in row] for row in diff]
    titles = [[f"{x} -> {y}: P = {fmt_prob(pa[i][j])} in {a.model.name}, "
               f"{fmt_prob(pb[i][j])} in {b.model.name}; log ratio {diff[i][j]:+.3f}"
               for j, y in enumerate(labels)] for i, x in enumerate(labels)]
    heat = plots.heatmap(labels, diff, texts, titles, -span, span, plots.RDBU,
                         f"log P({b.model.name}) - log P({a.model.name})", gradient_id="diff")
    ca = [[a.counts[i][j] for j in ia] for i in ia] if a.counts else None
    cb = [[b.counts[i][j] for j in ib] for i in ib] if b.counts else None
    by_counts = ca is not None or cb is not None
    changes = [Change(x + y, pa[i][j], pb[i][j], ca[i][j] if ca else None,
                      cb[i][j] if cb else None)
               for i, x in enumerate(labels) for j, y in enumerate(labels)]
    changes = sorted((c for c in changes if evident(c, by_counts)), key=lambda c: c.log_ratio)
    return Comparison(a, b, heat, rises=changes[::-1][:top], falls=changes[:top],
                      by_counts=by_counts)


def compare_defaults(registry: Registry, a: str, b: str) -> tuple[str, str] | None:
    """The two models to compare when a or b is blank: the earliest era against the latest
    (app/store/registry.py's `eras`), else the first two bigram tables in the registry's
    order; never a model against itself (None when fewer than two bigram tables are loaded)."""
    eras = registry.eras(has_bigram_table)
    tables = [m.name for m in registry.ordered() if has_bigram_table(m)]
    order = [eras[0].name, eras[-1].name] if len(eras) >= 2 else []
    order += [n for n in tables if n not in order]
    a = a or next((n for n in order if n != b), "")
    b = b or next((n for n in order if n != a), "")
    return (a, b) if a and b else None


@router.get("/bigram/compare", response_class=HTMLResponse, summary="Two bigram models compared")
@cacheable
@model_thread
def compare_bigrams(request: Request, registry: RegistryDep, a: str = "", b: str = ""):
    """Two bigram tables side by side and the difference of their log-probabilities."""
    choices = [m for m in registry.models.values() if has_bigram_table(m)]
    ctx = {"nav": "compare", "title": "Compare bigram models", "bigram_models": choices,
           "a_name": a, "b_name": b}
    try:
        pair = compare_defaults(registry, a.strip(), b.strip())
        if pair is None and choices:  # one bigram table: the page says so (compare.html)
            return render(request, "compare.html", ctx)
        ma, mb = (pick_model(registry, x or None, has_bigram_table, "bigram table")
                  for x in pair or (a, b))
        ta, tb = Table.of(ma), Table.of(mb)
        pmax = max(max(map(max, ta.probs)), max(map(max, tb.probs)))  # one colour scale
        ctx.update(cmp=compare_tables(ta, tb), min_count=MIN_COUNT,
                   heat_a=table_heatmap(ta, "probs", "grad-a", 20, False, pmax),
                   heat_b=table_heatmap(tb, "probs", "grad-b", 20, False, pmax))
    except USER_ERRORS as e:
        err = page_error(e, registry)
        return render(request, "compare.html", {**ctx, "error": err}, err.status)
    return render(request, "compare.html", ctx)
