"""The overview: one card per loaded model, with ten fresh samples."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from app.pages.common import RegistryDep, has_bigram_table, has_embeddings, render
from app.services import sample_names
from app.worker import model_thread

router = APIRouter(tags=["pages"])


@router.get("/", response_class=HTMLResponse, summary="Overview page")
@model_thread
def show_overview(request: Request, registry: RegistryDep):
    """Every loaded model: type, size, data, NLL, ten fresh samples and links."""
    cards = [
        {"m": m, "samples": sample_names(m, 10), "bigram": has_bigram_table(m),
         "embeddings": has_embeddings(m)}
        for m in registry.models.values()
    ]
    return render(request, "overview.html", {"nav": "overview", "title": "Overview",
                                             "cards": cards, "refused": registry.refused})
