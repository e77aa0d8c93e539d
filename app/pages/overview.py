"""The overview: one card per loaded model, with ten fresh samples."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from app.pages.common import has_bigram_table, has_embeddings
from app.params import SampleParams
from app.services import sample_names
from app.web import RegistryDep, render
from app.worker import model_thread

router = APIRouter(tags=["pages"])


@router.get("/", response_class=HTMLResponse, summary="Overview page")
@model_thread
def show_overview(request: Request, registry: RegistryDep):
    """Every loaded model: type, size, data, NLL, ten fresh samples and links."""
    cards = [
        {"m": m, "samples": sample_names(m, SampleParams(n=10)), "bigram": has_bigram_table(m),
         "embeddings": has_embeddings(m)}
        for m in registry.models.values()
    ]
    return render(request, "overview.html", {"nav": "overview", "title": "Overview",
                                             "cards": cards, "refused": registry.refused})
