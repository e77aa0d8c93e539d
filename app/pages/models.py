"""The model card: hyperparameters, data, metrics, loss curves, the most probable names."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from app.domain.params import SampleParams, TopParams
from app.domain.services import top_names
from app.pages import plots
from app.pages.explore import inside_card
from app.serving.worker import model_thread
from app.store.registry import LoadedModel, Registry
from app.web.deps import RegistryDep
from app.web.errors import USER_ERRORS, error_page, page_error
from app.web.templating import reads, render

router = APIRouter(tags=["pages"])

SAME_NLL = 0.005  # nats per character: closer than this, two models fit the data equally well


def loss_chart(m: LoadedModel, ref: LoadedModel | None) -> plots.LineChart | None:
    """Training and validation NLL against the step; the counting bigram as a reference line."""
    h = m.meta.history
    if not h.step:
        return None
    series = [plots.Series("training loss", "train", h.step, h.train),
              plots.Series("validation loss", "val", h.step, h.val, markers=True)]
    refs = []
    if ref is not None and ref.meta.metrics.train_nll is not None:
        refs.append((f"{ref.name} (counts), training NLL", ref.meta.metrics.train_nll))
    return plots.line_chart(series, "step", "NLL per character (nats)", refs)


def same_data(registry: Registry, m: LoadedModel) -> list[LoadedModel]:
    """The other loaded models trained on exactly the same word list (same sha256)."""
    return [x for x in registry.models.values()
            if x is not m and x.meta.dataset.sha256 == m.meta.dataset.sha256]


def counting_twin(registry: Registry, m: LoadedModel) -> LoadedModel | None:
    """For a model with a bigram table but no counts (the neural bigram): a counting model
    trained on the same data, if one is loaded."""
    if not m.kind.has_table or m.kind.has_counts:
        return None
    return next((x for x in same_data(registry, m) if x.kind.has_counts), None)


@dataclass(frozen=True)
class TwinVerdict:
    """The neural bigram against the count table it should learn, in one sentence."""

    sentence: str
    nll: float
    twin_nll: float
    split: str  # which NLL is compared: 'test', 'val' or 'train'


def twin_verdict(m: LoadedModel, twin: LoadedModel) -> TwinVerdict | None:
    for split in ("test", "val", "train"):
        a = getattr(m.meta.metrics, f"{split}_nll")
        b = getattr(twin.meta.metrics, f"{split}_nll")
        if a is not None and b is not None:
            break
    else:
        return None
    if abs(a - b) < SAME_NLL:
        s = (f"The network learned the count table: {split} NLL {a:.4f} vs {b:.4f} for "
             f"{twin.name}, the counting bigram trained on the same names.")
    else:
        s = (f"The network has not matched the count table: {split} NLL {a:.4f} vs {b:.4f} "
             f"for {twin.name}, the counting bigram trained on the same names.")
    return TwinVerdict(s, a, b, split)


@router.get("/models/{model}", response_class=HTMLResponse, summary="Model card page")
@reads("name", named=tuple(SampleParams.model_fields))  # named as not applied: card_notice
@model_thread
def show_model(request: Request, registry: RegistryDep, model: str, name: str | None = None):
    """Everything a checkpoint says about itself, its loss curves, its top-10 names, its
    hidden layers' health and (a Transformer) its attention over `name`."""
    try:
        m = registry.get(model)
    except USER_ERRORS as e:
        return error_page(request, page_error(e, registry))
    twin = counting_twin(registry, m)
    top = top_names(m, TopParams(k=10))
    return render(request, "model.html", {
        "nav": None, "title": f"Model {m.name}", "m": m, "chart": loss_chart(m, twin),
        "twin": twin, "verdict": twin_verdict(m, twin) if twin else None,
        "peers": same_data(registry, m), "top": top,
        "inside": inside_card(m, name), "not_applied": card_notice(request.query_params)})


def card_notice(q) -> str | None:
    """The card reads only `name` (its attention box); sampling's knobs and constraints do not
    shape what it shows (its top names are the model's own), so they are named, not ignored."""
    knobs = [k for k in q.keys() if k in SampleParams.model_fields]
    if not knobs:
        return None  # any other parameter it does not read: web.render's notice names it
    return (f"Not applied: {', '.join(repr(k) for k in knobs)}: the card shows the model's "
            "own distribution; the next-letter and sample pages take sampling's settings.")
