"""What every page router shares: the templates, rendering, reading query parameters, errors.

Pages read their query parameters as raw strings and parse them here, so that a bad value is
shown in the page next to the form that produced it (with what to fix), never as a JSON 422.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from app.api.deps import RegistryDep  # noqa: F401  (the pages' dependency, shared with the API)
from app.config import TEMPLATES_DIR
from app.lm.vocab import InvalidName
from app.registry import LoadedModel, Registry, UnknownModel
from app.services import NoTable
from app.static import static_url

templates = Jinja2Templates(directory=TEMPLATES_DIR)

# (key, href, label) of the main navigation, in order.
NAV = [
    ("overview", "/", "Overview"),
    ("bigram", "/bigram", "Bigram heatmap"),
    ("compare", "/bigram/compare", "Compare bigrams"),
    ("embeddings", "/embeddings", "Embeddings"),
    ("sample", "/sample", "Sample"),
    ("score", "/score", "Score"),
]


def query(**params) -> str:
    """'?a=1&b=x' from the parameters that have a value ('' when none do)."""
    kept = {k: v for k, v in params.items() if v is not None and v != "" and v is not False}
    return "?" + urlencode(kept) if kept else ""


def fmt_num(v: float | None, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{v:.{digits}f}"


def fmt_prob(p: float) -> str:
    """Probabilities as in the tooltips: 0.0123; very small ones in scientific notation."""
    return f"{p:.4f}" if p >= 1e-4 else f"{p:.2e}"


def ordinal(n: float) -> str:
    """43 -> '43rd', 11 -> '11th' (rounded to a whole number first)."""
    k = round(n) if math.isfinite(n) else 0
    suffix = "th" if 10 <= k % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return f"{k}{suffix}"


templates.env.globals.update(NAV=NAV, query=query, static_url=static_url)
templates.env.filters.update(num=fmt_num, prob=fmt_prob, ordinal=ordinal)



def render(request: Request, name: str, context: dict, status_code: int = 200) -> HTMLResponse:
    return templates.TemplateResponse(request=request, name=name, context=context,
                                      status_code=status_code)


# --- errors shown in the page -----------------------------------------------------------------


class BadInput(ValueError):
    """A query parameter that cannot be used; the message says what to type instead."""


@dataclass(frozen=True)
class PageError:
    status: int
    message: str
    fix: str


# What a user can get wrong; everything else is a bug and is not caught here.
USER_ERRORS = (UnknownModel, InvalidName, BadInput, NoTable)


def page_error(exc: Exception, registry: Registry) -> PageError:
    available = ", ".join(registry.names()) or "none"
    if isinstance(exc, UnknownModel):
        return PageError(404, f"There is no model called {exc.name!r}.",
                         f"Pick one of the loaded models: {available}.")
    if isinstance(exc, NoTable):
        return PageError(404, f"{str(exc)[0].upper()}{str(exc)[1:]}.",
                         "Pick a model of the right type from the list.")
    if isinstance(exc, InvalidName):
        return PageError(400, f"{str(exc)[0].upper()}{str(exc)[1:]}.",
                         "Use letters of the alphabet only (accents are removed).")
    return PageError(400, str(exc), "Correct the field and submit the form again.")


def error_page(request: Request, err: PageError) -> HTMLResponse:
    """A page of its own for an error that has no form to show it next to."""
    return render(request, "error.html", {"title": "Error", "nav": None, "error": err},
                  err.status)


# --- reading query parameters -----------------------------------------------------------------


def int_param(raw: str | None, name: str, default: int | None, lo: int, hi: int) -> int | None:
    """A whole number in [lo, hi]; blank gives the default."""
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise BadInput(f"{name} must be a whole number between {lo} and {hi}, "
                       f"got {raw!r}.") from None
    if not lo <= value <= hi:
        raise BadInput(f"{name} must be between {lo} and {hi}, got {value}.")
    return value


def float_param(raw: str | None, name: str, default: float, lo: float, hi: float) -> float:
    """A number in (lo, hi]; blank gives the default."""
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw.strip())
    except ValueError:
        raise BadInput(f"{name} must be a number, got {raw!r}.") from None
    if not (math.isfinite(value) and lo < value <= hi):
        raise BadInput(f"{name} must be greater than {lo:g} and at most {hi:g}, got {raw.strip()}.")
    return value


def flag(raw: str | None) -> bool:
    """An HTML checkbox: present (any value but '', '0', 'false', 'off') means checked."""
    return raw is not None and raw.strip().lower() not in ("", "0", "false", "off", "no")


def pick_model(registry: Registry, name: str | None, has=None, what: str = "model") -> LoadedModel:
    """The named model, or the first loaded model for which has(model) is true.

    UnknownModel for a name that is not loaded; NoTable when the model (or every model) lacks
    what the page needs.
    """
    if name:
        m = registry.get(name)
        if has is not None and not has(m):
            usable = [x.name for x in registry.models.values() if has(x)]
            raise NoTable(f"model {m.name!r} ({m.meta.model_type}) has no {what}; models that "
                          f"have one: {', '.join(usable) or 'none'}")
        return m
    m = registry.first(has or (lambda _: True))
    if m is None:
        raise NoTable(f"no loaded model has a {what}")
    return m


def has_bigram_table(m: LoadedModel) -> bool:
    return m.model.bigram_probs() is not None


def has_embeddings(m: LoadedModel) -> bool:
    return m.model.embedding_table() is not None
