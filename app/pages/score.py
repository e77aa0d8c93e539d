"""Score names under every loaded model, side by side, letter by letter."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from app.domain import era
from app.domain.params import InvalidParam, NameParam
from app.domain.services import NameScore
from app.pages import plots
from app.pages.era_chart import EraChart, era_chart
from app.pages.history import panels
from app.serving import batching, worker
from app.serving.pagecache import cacheable
from app.store.registry import LoadedModel
from app.web.deps import RegistryDep
from app.web.errors import BadInput, PageError, page_error
from app.web.templating import fmt_prob, reads, render

router = APIRouter(tags=["pages"])

MAX_NAMES = 20
MAX_CHARS = 2000


@dataclass(frozen=True)
class Letter:
    char: str
    prob: float
    surprise: int  # plots.surprise_bin: the css class surprise-N
    title: str
    before: str  # the letters before it: its step on the next-letter page (/next)


@dataclass(frozen=True)
class Cell:
    """One name under one model: its score and letters, or why it cannot be scored."""

    model: LoadedModel
    score: NameScore | None
    error: str | None
    letters: list[Letter]
    end: Letter | None  # the end token: how likely the name stops here

    @property
    def bar(self) -> float:
        s = self.score
        return plots.percent_width(s.plausibility) if s and s.plausibility is not None else 0.0


@dataclass(frozen=True)
class Row:
    """One name under every model; `error` when no model can score it (said once)."""

    name: str
    cells: list[Cell]

    @property
    def error(self) -> str | None:
        errors = {c.error for c in self.cells}
        return errors.pop() if len(errors) == 1 and None not in errors else None


def letters_of(s: NameScore) -> tuple[list[Letter], Letter]:
    out = []
    for k, step in enumerate(s.steps):
        before = s.normalized[:k]
        char, prob, rank = step["char"], step["prob"], step["rank"]
        what = "the end of the name" if char == "." else repr(char)
        title = f"{what} after {before or 'the start'!r}: P = {fmt_prob(prob)} (rank {rank})"
        out.append(Letter(char, prob, plots.surprise_bin(prob), title, before))
    return out[:-1], out[-1]


async def score_column(m: LoadedModel, names: list[str]) -> list[Cell]:
    """Every name under one model: the names it can score go to the model thread as one
    request (a page of 20 names under 9 models is 9 requests in its queue, not 180)."""
    errors: dict[int, str] = {}
    for i, name in enumerate(names):
        try:
            NameParam.parse({"name": name})  # the API's bounds: 1..64 characters
        except InvalidParam as e:
            errors[i] = str(e)
    kept = [i for i in range(len(names)) if i not in errors]
    # the API's partial scoring: the names in the model's alphabet scored, an error for the rest
    scored, bad = await batching.score_valid(m, [names[i] for i in kept])
    errors.update({kept[e.index]: str(e) for e in bad})
    scores = iter(scored)
    cells = []
    for i in range(len(names)):
        if i in errors:
            cells.append(Cell(m, None, errors[i], [], None))
        else:
            s = next(scores)
            cells.append(Cell(m, s, None, *letters_of(s)))
    return cells


@dataclass(frozen=True)
class NameEra:
    """When a scored name sounds like it is from, under one conditional model."""

    model: LoadedModel
    era: era.Era
    chart: EraChart


async def era_rows(models: list[LoadedModel], rows: list[Row], prior: era.Prior
                   ) -> list[NameEra]:
    """Each scored name's era under each conditional model shown (one model-thread job per
    model)."""
    out = []
    for k, m in enumerate(models):
        if not m.kind.has_conditions:
            continue
        names = list(dict.fromkeys(r.cells[k].score.normalized for r in rows
                                   if r.cells[k].score is not None))
        if names:
            try:
                found = await worker.run(era.eras, m.model, names, prior)
            except era.BadPrior as e:
                raise BadInput(f"{m.name}: {e}.") from None
            out += [NameEra(m, e, era_chart(e)) for e in found]
    return out


def split_names(text: str) -> list[str]:
    """One name per line (commas and spaces separate names too)."""
    if len(text) > MAX_CHARS:
        raise BadInput(f"the text is {len(text)} characters long; paste at most {MAX_CHARS}.")
    names = [x for x in re.split(r"[\s,;]+", text) if x]
    if len(names) > MAX_NAMES:
        raise BadInput(f"{len(names)} names given; score at most {MAX_NAMES} at a time.")
    return names


@router.get("/score", response_class=HTMLResponse, summary="Scoring page")
@cacheable
@reads("name")
async def score_page(request: Request, registry: RegistryDep, names: str = "",
                     prior: str = "records"):
    """Each name under each model: log-probability, NLL per letter, plausibility, surprise;
    and, under a conditional model, when it sounds like it is from (`prior`: records or
    uniform)."""
    # repeated values (?names=emma&names=liam, as the API's list) and the API's GET parameter
    # (?name=emma, repeated too) are one name list
    q = request.query_params
    names = "\n".join(q.getlist("names") + q.getlist("name")) or names
    models = list(registry.models.values())
    ctx = {"nav": "score", "title": "Score names", "names": names, "max_names": MAX_NAMES,
           "bins": range(plots.SURPRISE_BINS), "prior": prior, "priors": era.PRIORS,
           "conditional": [m.name for m in models if m.kind.has_conditions]}
    try:
        if prior not in era.PRIORS:
            raise BadInput(f"prior must be {' or '.join(era.PRIORS)}, got {prior!r}.")
        given = split_names(names)
        columns = await asyncio.gather(*(score_column(m, given) for m in models))
        rows = [Row(x, [column[i] for column in columns]) for i, x in enumerate(given)]
        ctx["eras"] = await era_rows(models, rows, prior)
    except BadInput as e:
        err = page_error(e, registry)
        return render(request, "score.html", {**ctx, "error": err}, err.status)
    history_panels, history_error = await panels(request.app.state.settings.history_file,
                                                 given)
    ctx.update(history_panels=history_panels, history_error=history_error)
    scored = any(c.score for row in rows for c in row.cells)
    err = None if scored or not rows else PageError(
        422, "None of the names could be scored.", "Use letters of the alphabet only.")
    return render(request, "score.html", {**ctx, "rows": rows, "models": models, "error": err},
                  err.status if err else 200)
