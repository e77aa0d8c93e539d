"""The overview: a box to score a name and a button to generate names from the best model, then
one card per loaded model (in the registry's order: best first), with ten fresh samples."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from app.domain.params import SampleParams
from app.pages.common import has_bigram_table, has_embeddings
from app.serving import batching
from app.web.deps import RegistryDep
from app.web.templating import render

router = APIRouter(tags=["pages"])

SAMPLES = 10  # names per card


# Async: each card's samples are a request of their own on the model thread
# (app/serving/batching.py), with their own budget: one card's slowness never takes another's
# names, and other requests are served between the cards.
@router.get("/", response_class=HTMLResponse, summary="Overview page")
async def show_overview(request: Request, registry: RegistryDep):
    """Score a name, generate names; every loaded model: type, size, data, NLL, ten fresh
    samples and links."""
    models = registry.ordered()
    samples = await asyncio.gather(*(batching.sample(m, SampleParams(n=SAMPLES))
                                     for m in models))
    cards = [{"m": m, "samples": s, "bigram": has_bigram_table(m),
              "embeddings": has_embeddings(m)} for m, s in zip(models, samples, strict=True)]
    return render(request, "overview.html", {"nav": "overview", "title": "Overview",
                                             "cards": cards, "refused": registry.refused,
                                             "sampler": registry.sampler()})
