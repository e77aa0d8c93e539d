"""What the page routers share beyond app/web/: reading query parameters, picking a model.

Pages read their query parameters as raw strings and parse them here (into the operation's
parameters of app/domain/params.py where there is one), so that a bad value is shown in the page
next to the form that produced it (with what to fix), never as a JSON 422.
"""

from __future__ import annotations

from app.domain.services import NoTable
from app.store.registry import LoadedModel, Registry
from app.web.errors import BadInput


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


def flag(raw: str | None) -> bool:
    """An HTML checkbox: present (any value but '', '0', 'false', 'off') means checked."""
    return raw is not None and raw.strip().lower() not in ("", "0", "false", "off", "no")


def pick_model(registry: Registry, name: str | None, has=None, what: str = "model") -> LoadedModel:
    """The named model, or the first model in the registry's order (app/store/registry.py) for which
    has(model) is true.

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
    m = registry.first(has)
    if m is None:
        raise NoTable(f"no loaded model has a {what}")
    return m


def has_bigram_table(m: LoadedModel) -> bool:
    return m.kind.has_table


def has_embeddings(m: LoadedModel) -> bool:
    return m.kind.has_embeddings
