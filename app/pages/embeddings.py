"""The character embeddings: scatter plot (raw 2-D, PCA or two chosen dimensions), neighbours."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from app import plots
from app.pages.common import has_embeddings, int_param, pick_model
from app.services import EmbeddingView, embedding_view
from app.web import USER_ERRORS, BadInput, RegistryDep, page_error, render
from app.worker import model_thread

router = APIRouter(tags=["pages"])


def chosen_dims(x: str | None, y: str | None, dim: int) -> tuple[int, int] | None:
    """Two raw dimensions to plot, or None for the default view (both blank)."""
    if not (x or "").strip() and not (y or "").strip():
        return None
    i = int_param(x, "x dimension", None, 0, dim - 1)
    j = int_param(y, "y dimension", None, 0, dim - 1)
    if i is None or j is None:
        raise BadInput(f"pick both dimensions (0 to {dim - 1}), or neither for the default view.")
    if i == j:
        raise BadInput(f"pick two different dimensions, got {i} twice.")
    return i, j


def axis_labels(view: EmbeddingView) -> tuple[str, str]:
    p = view.projection
    ev = [f"{100 * v:.1f}% of variance" for v in p.explained_variance]
    if p.method == "pca":
        return f"PC1 ({ev[0]})", f"PC2 ({ev[1]})"
    return f"dimension {p.dims[0]} ({ev[0]})", f"dimension {p.dims[1]} ({ev[1]})"


@router.get("/embeddings", response_class=HTMLResponse, summary="Character embeddings page")
@model_thread
def show_embeddings(request: Request, registry: RegistryDep, model: str = "",
                    x: str | None = None, y: str | None = None):
    """Each letter's embedding as a labelled point, and its nearest letters."""
    ctx = {"nav": "embeddings", "title": "Character embeddings", "x": x or "", "y": y or "",
           "emb_models": [m for m in registry.models.values() if has_embeddings(m)]}
    try:
        m = pick_model(registry, model, has_embeddings, "embedding table")
        view = embedding_view(m, chosen_dims(x, y, m.model.embedding_table().shape[1]))
        plot = plots.scatter(view.projection.points, view.labels, *axis_labels(view))
    except USER_ERRORS as e:
        err = page_error(e, registry)
        return render(request, "embeddings.html", {**ctx, "error": err}, err.status)
    return render(request, "embeddings.html", {**ctx, "m": m, "view": view, "plot": plot})
