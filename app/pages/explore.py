"""Looking inside the models: the next-letter page (/next), and the model card's attention
heatmaps and hidden layers' health (drawn here, shown by templates/_inside.html)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from app.data.decades import SEX_WORDS
from app.domain.explorer import (
    Health,
    NextView,
    attention_kinds,
    attention_view,
    health,
    next_view,
    top_with,
)
from app.domain.params import InvalidParam, NameParam, NextParams, SampleParams
from app.domain.services import TopName, under_condition
from app.lm.inspect import LayerHealth, max_attention_letters
from app.pages import plots
from app.serving.pagecache import cacheable
from app.serving.worker import model_thread
from app.store.registry import LoadedModel, Registry
from app.web.deps import RegistryDep
from app.web.errors import USER_ERRORS, BadInput, page_error
from app.web.templating import fmt_prob, query, reads, render

router = APIRouter(tags=["pages"])

MAX_MODELS = 3  # side by side on the next-letter page
DEFAULT_NAME = "emma"  # the model card's attention box


# --- the next letter ----------------------------------------------------------------------


@dataclass(frozen=True)
class NextBar:
    label: str  # the letter, or 'end'
    href: str | None  # the page after this letter (the end: the name's score), None if cut
    y: float
    width: float  # the sampling probability's bar
    model_x: float  # where the model's own probability (temperature 1) ends, for its tick
    kept: bool  # drawn: neither the knobs nor the constraints cut it
    texts: tuple[str, str, str]  # the columns: drawn ('cut', 'no fit'), P, log P
    title: str


@dataclass(frozen=True)
class NextChart:
    width: float
    height: float
    left: float
    plot_width: float
    bar: float
    head: float  # y of the columns' headings
    columns: list[tuple[float, str]]  # (right edge, heading) of the number columns
    bars: list[NextBar]
    ticks: list[plots.Tick]


@dataclass(frozen=True)
class NextColumn:
    """One model on the next-letter page: its view, or why the prefix cannot be read by it."""

    m: LoadedModel
    view: NextView | None
    error: str | None
    chart: NextChart | None
    top: list[TopName]
    top_cut: bool  # fewer than asked: the search's count of expansions or its deadline
    top_timed_out: bool  # the deadline (a safety net) stopped it
    label: str = ""  # the heading, when not the model's name: a conditional model's condition


def signed(v: float, digits: int = 3) -> str:
    """A log-probability with a real minus sign: −1.382 (−∞ for log 0)."""
    if v == float("-inf"):
        return "−∞"
    return f"{v:.{digits}f}".replace("-", "−")


def short_prob(p: float) -> str:
    """A probability in 5 characters for the chart's columns (the tooltip has 4 digits)."""
    return f"{p:.3f}" if p >= 0.001 or p == 0 else f"{p:.0e}"


def next_chart(v: NextView, link, width: float = 360, bar: float = 18,
               gap: float = 4) -> NextChart:
    """Sorted horizontal bars: the length is the probability the next step is drawn with; a
    tick marks the model's own probability; then the numbers in columns (drawn, P, log P). A
    cut symbol has no bar and says why. Drawn at about its own size in a column of the page
    (360 units: a third of the widest page, a phone's width), so its 12-unit texts stay
    readable with three models side by side."""
    col = 48.0  # each number column, right-aligned
    columns = [(width - 4 - (2 - i) * col, h) for i, h in enumerate(("drawn", "P", "log P"))]
    left, top = 40.0, 26.0  # room for 'end' left of the bars
    plot_width = columns[0][0] - col - 8 - left
    # the axis ends at a round number above the longest bar or tick (at most 1), not at 1: a
    # flat distribution's bars would be a few pixels long
    most = max([s.prob for s in v.symbols] + [s.sampling_prob for s in v.symbols] + [0.05])
    hi = min(plots.nice_domain(0.0, most, 4)[1], 1.0)
    scale = plots.Linear(0.0, hi, 0.0, plot_width)
    bars = []
    for k, s in enumerate(v.symbols):
        end = s.char == "."
        what = "the end of the name" if end else repr(s.char)
        shown = s.kept and s.fits
        drawn = (f"sampling draws it with {fmt_prob(s.sampling_prob)}" if shown
                 else "cut by the sampling knobs" if not s.kept
                 else "cut: no name going on with it fits the constraints")
        title = (f"{what} after {v.prefix or 'the start'!r}: P = {fmt_prob(s.prob)}, log P = "
                 f"{signed(s.log_prob, 4)}; {drawn}")
        texts = (short_prob(s.sampling_prob) if shown else "cut" if not s.kept else "no fit",
                 short_prob(s.prob), signed(s.log_prob, 2))
        bars.append(NextBar(s.label, link(s.char) if shown else None, top + k * (bar + gap),
                            scale(s.sampling_prob) if shown else 0.0, left + scale(s.prob),
                            shown, texts, title))
    bottom = top + len(bars) * (bar + gap)
    ticks = [plots.Tick(left + scale(t), plots.fmt_tick(t)) for t in plots.nice_ticks(0, hi, 4)]
    return NextChart(width, bottom + 30, left, plot_width, bar, 14.0, columns, bars, ticks)


# What the view applies: NextParams' fields but the prefix (the sampling knobs and the
# constraints, as the sample page names them).
APPLIED = tuple(k for k in NextParams.model_fields if k != "prefix")
# Sampling's fields that do not shape one step's draw (how many, which seed, repeats), by the
# sample page's names and the API's: named in a notice rather than ignored.
NOT_APPLIED = tuple(dict.fromkeys(k for f in SampleParams.form()
                                  if f.field not in NextParams.model_fields
                                  for k in (f.name, f.field)))


def next_href(models: list[str], prefix: str, knobs: dict[str, str]) -> str:
    """The next-letter page's address for these models, prefix, knobs and constraints (the
    form's values; blank ones left out; the models repeat `model=`)."""
    kept = [("model", n) for n in models] + [
        (k, v) for k, v in (("prefix", prefix), *((k, knobs.get(k)) for k in APPLIED))
        if v is not None and v != ""]
    return "/next?" + urlencode(kept) if kept else "/next"


def next_notice(q) -> str | None:
    """Sampling's fields that do not shape a step's draw, named as not applied (any other
    parameter the page does not read is named by web.render's notice)."""
    skipped = [k for k in NOT_APPLIED if k in q]
    if not skipped:
        return None
    return (f"Not applied: {', '.join(repr(k) for k in skipped)}: they choose how many names "
            "are drawn and which, not what one step draws from.")


def models_asked(registry: Registry, names: list[str]) -> list[LoadedModel]:
    """The models named (in order, each once; UnknownModel for one not loaded), at most
    MAX_MODELS; none named: the first in the registry's order (app/store/registry.py)."""
    names = list(dict.fromkeys(n.strip() for n in names if n.strip()))
    if len(names) > MAX_MODELS:
        raise BadInput(f"{len(names)} models asked; compare at most {MAX_MODELS} side by side.")
    if not names:
        return [registry.first()]
    return [registry.get(n) for n in names]


def condition_label(m: LoadedModel, p: NextParams) -> str:
    """'era, the 1920s, girls' for a conditional model under a condition; else its name."""
    parts = [m.name] + ([f"the {p.decade}s"] if p.decade is not None else []) + (
        [SEX_WORDS[p.sex]] if p.sex is not None else [])
    return ", ".join(parts)


def next_columns(m: LoadedModel, p: NextParams, models: list[str],
                 knobs: dict[str, str]) -> list[NextColumn]:
    """m's column; with a vs_decade, a second one under that decade beside it (how the
    distribution shifts between the two decades), or why m takes none."""
    columns = [next_column(m, p, models, knobs)]
    if p.vs_decade is not None:
        vs = p.model_copy(update={"decade": p.vs_decade})
        try:
            under_condition(m, p.vs_decade, p.sex, field="vs_decade")
        except InvalidParam as e:
            return [*columns, NextColumn(m, None, str(e), None, [], False, False,
                                         condition_label(m, vs))]
        columns.append(next_column(m, vs, models, knobs))
    return columns


def next_column(m: LoadedModel, p: NextParams, models: list[str],
                knobs: dict[str, str]) -> NextColumn:
    label = condition_label(m, p)
    try:
        v = next_view(m, p)
    except InvalidParam as e:
        return NextColumn(m, None, str(e), None, [], False, False, label)

    def link(char: str) -> str:
        if char == ".":
            return "/score" + query(names=v.prefix)
        return next_href(models, v.prefix + char, knobs)

    top = top_with(m, p)
    return NextColumn(m, v, None, next_chart(v, link), top.names, top.exhausted,
                      top.timed_out, label)


@router.get("/next", response_class=HTMLResponse, summary="Next-letter page")
@cacheable
@reads("model", "prefix", *APPLIED, named=NOT_APPLIED)  # NOT_APPLIED: named by next_notice
@model_thread
def show_next(request: Request, registry: RegistryDep):
    """The next-letter distribution after a prefix, under up to three models side by side."""
    q = request.query_params
    form = {k: q.get(k, "") for k in ("prefix", *APPLIED)}
    ctx = {"nav": "next", "title": "Next letter", "models": registry.names(), "form": form,
           "params": NextParams, "chosen": q.getlist("model"), "max_models": MAX_MODELS,
           "more_open": any(form[k] for k in APPLIED if k not in ("temperature", "top_k")),
           "not_applied": next_notice(q),
           "vocab_size": max((len(m.model.vocab) for m in registry.models.values()),
                             default=27)}
    ctx["inputs"] = NextParams.form({"top_k": {"max": ctx["vocab_size"]}})
    try:
        ms = models_asked(registry, q.getlist("model"))
        p = NextParams.parse(form)
    except USER_ERRORS as e:
        err = page_error(e, registry)
        return render(request, "next.html", {**ctx, "error": err}, err.status)
    names = [m.name for m in ms]
    columns = [c for m in ms for c in next_columns(m, p, names, form)]
    ok = [c for c in columns if c.view]
    prefix = ok[0].view.prefix if ok else form["prefix"]
    up = next_href(names, prefix[:-1], form)
    err = None if ok else page_error(InvalidParam("prefix", columns[0].error, prefix), registry)
    response = render(request, "next.html", {**ctx, "chosen": names, "columns": columns,
                                             "prefix": prefix, "up": up if prefix else None,
                                             "p": p, "error": err},
                      err.status if err else 200)
    if any(c.top_timed_out for c in columns):  # its top names depend on the load: not kept
        response.headers["cache-control"] = "no-store"
    return response


# --- the model card: attention ------------------------------------------------------------


@dataclass(frozen=True)
class AttentionMaps:
    name: str
    layers: list[tuple[str, list[tuple[str, plots.Heatmap]]]]  # (layer, [(head, map)])


def attention_maps(m: LoadedModel, raw: str) -> AttentionMaps:
    """One heatmap per layer and head, and the heads' average per layer (InvalidParam for a
    name the model cannot read)."""
    NameParam.parse({"name": raw})
    a = attention_view(m, raw)
    labels = a.positions  # '.', then the letters (the tooltips give the positions' numbers)

    def one(w: list[list[float]], what: str, gid: str) -> plots.Heatmap:
        T = len(w)
        texts = [[f"{w[t][s]:.2f}" if s <= t else "" for s in range(T)] for t in range(T)]
        titles = [[f"{what}: {a.positions[t]!r} at {t} attends to {a.positions[s]!r} at {s} "
                   f"with weight {w[t][s]:.3f}" if s <= t else
                   f"{what}: position {t} cannot see position {s} (causal)" for s in range(T)]
                  for t in range(T)]
        return plots.heatmap(labels, w, texts, titles, 0.0, 1.0, plots.BLUES, "weight",
                             gradient_id=gid, axis_titles=("attended to", "attending"))

    layers = []
    for li, heads in enumerate(a.weights):
        maps = [(f"head {h + 1}", one(w, f"layer {li + 1}, head {h + 1}", f"att-{li}-{h}"))
                for h, w in enumerate(heads)]
        maps.append(("average of the heads", one(a.mean[li], f"layer {li + 1}, average",
                                                 f"att-{li}-mean")))
        layers.append((f"layer {li + 1}", maps))
    return AttentionMaps(a.name, layers)


# --- the model card: hidden layers' health ------------------------------------------------


@dataclass(frozen=True)
class Histogram:
    width: float
    height: float
    left: float
    top: float
    bottom: float
    right: float
    bars: list[tuple[float, float, float, float, str]]  # x, y, width, height, tooltip
    x_ticks: list[plots.Tick]
    y_ticks: list[plots.Tick]
    marks: list[float]  # x of the saturation thresholds (tanh: -0.97, 0.97)


def histogram(layer: LayerHealth, width: float = 360, height: float = 170) -> Histogram:
    """The activations' histogram: share of the activations in each bin."""
    left, top, right, bottom = 44.0, 8.0, width - 10.0, height - 34.0
    total = sum(layer.histogram) or 1
    shares = [c / total for c in layer.histogram]
    hi = plots.nice_domain(0.0, max(shares) or 1.0, 4)[1]
    sx = plots.Linear(layer.lo, layer.hi, left, right)
    sy = plots.Linear(0.0, hi, bottom, top)
    n = len(shares)
    step = (layer.hi - layer.lo) / n
    bars = []
    for i, s in enumerate(shares):
        a, b = layer.lo + i * step, layer.lo + (i + 1) * step
        span = (f"{a:.2f} and above" if i == n - 1 and layer.activation != "tanh"
                else f"{a:.2f} to {b:.2f}")
        bars.append((sx(a), sy(s), sx(b) - sx(a), bottom - sy(s),
                     f"{span}: {100 * s:.1f}% of the activations"))
    marks = [sx(-0.97), sx(0.97)] if layer.activation == "tanh" else []
    return Histogram(width, height, left, top, bottom, right, bars,
                     [plots.Tick(sx(t), plots.fmt_tick(t))
                      for t in plots.nice_ticks(layer.lo, layer.hi, 4)],
                     [plots.Tick(sy(t), f"{100 * t:g}%") for t in plots.nice_ticks(0.0, hi, 3)],
                     marks)


@dataclass(frozen=True)
class Inside:
    """What the model card shows of the model's inside (templates/_inside.html)."""

    health: Health | None
    histograms: list[Histogram]
    attention: AttentionMaps | None
    attention_error: str | None
    name: str  # the attention box's text
    max_letters: int | None
    attention_kinds: list[str]  # the kinds that have attention (named on a card without)


def inside_card(m: LoadedModel, name: str | None) -> Inside:
    h = health(m)
    hists = [histogram(layer) for layer in h.layers] if h else []
    maps, err, raw = None, None, DEFAULT_NAME if name is None else name
    if m.kind.has_attention:
        try:
            maps = attention_maps(m, raw)
        except InvalidParam as e:
            err = str(e)
    longest = max_attention_letters(m.model) if m.kind.has_attention else None
    return Inside(h, hists, maps, err, raw, longest, attention_kinds())
