"""The character embeddings: a 2-D map (raw 2-D, PCA, t-SNE or two chosen dimensions), the
letters' cosine similarities as a heatmap, and each letter's nearest letters."""

from __future__ import annotations

import math

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from app.domain.services import EmbeddingView, embedding_view
from app.pages import plots
from app.pages.common import has_embeddings, int_param, pick_model
from app.serving.pagecache import cacheable
from app.serving.worker import model_thread
from app.store.registry import Registry
from app.web.deps import RegistryDep
from app.web.errors import USER_ERRORS, BadInput, page_error
from app.web.templating import render

router = APIRouter(tags=["pages"])

# view key -> what the form calls it; 'raw' only for a 2-D table, 'dims' needs x and y
VIEWS = {"raw": "both coordinates", "pca": "PCA", "tsne": "t-SNE", "dims": "two dimensions"}


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


def chosen_view(view: str | None, dims: tuple[int, int] | None, dim: int) -> str:
    """The map to draw: as asked, else two dimensions when x and y are given, else the default
    (the coordinates themselves of a 2-D table, PCA of a wider one)."""
    view = (view or "").strip()
    if not view:
        return "dims" if dims else ("raw" if dim == 2 else "pca")
    if view not in VIEWS:
        raise BadInput(f"view must be one of {', '.join(VIEWS)}, got {view!r}.")
    if view == "raw" and dim != 2:
        raise BadInput(f"the embeddings are {dim}-dimensional: pick PCA, t-SNE or two "
                       "dimensions.")
    if view == "dims" and dims is None:
        raise BadInput(f"pick both dimensions (0 to {dim - 1}) for the two-dimensions view.")
    return view


def axis_labels(view: EmbeddingView) -> tuple[str, str]:
    p = view.projection
    if p.method == "tsne":
        return "t-SNE 1 (no units: only neighbours count)", "t-SNE 2"
    ev = [f"{100 * v:.1f}% of variance" for v in p.explained_variance]
    if p.method == "pca":
        return f"PC1 ({ev[0]})", f"PC2 ({ev[1]})"
    return f"dimension {p.dims[0]} ({ev[0]})", f"dimension {p.dims[1]} ({ev[1]})"


def similarity_heatmap(view: EmbeddingView) -> plots.Heatmap:
    """27x27 cosine similarities, rows and columns in the clustering order (groups as blocks)."""
    order = view.order
    labels = [view.labels[i] for i in order]
    sim = [[view.similarity[i][j] for j in order] for i in order]
    texts = [[f"{v:.2f}" for v in row] for row in sim]
    titles = [[f"{a} ~ {b}: cosine similarity {sim[i][j]:+.3f}" for j, b in enumerate(labels)]
              for i, a in enumerate(labels)]
    # the colour scale spans the largest similarity between two different letters (the
    # diagonal is 1), so that weak but real groups still show
    span = max((abs(v) for i, row in enumerate(sim) for j, v in enumerate(row) if i != j),
               default=1.0) or 1.0
    return plots.heatmap(labels, sim, texts, titles, -span, span, plots.RDBU,
                         "cosine similarity (centred vectors)", gradient_id="sim",
                         axis_titles=("letter", "letter"))


def closest(view: EmbeddingView, k: int = 3) -> dict[str, list[tuple[str, float]]]:
    """Each letter's k nearest letters by Euclidean distance in the table (for a 2-D table: the
    distances on the plot, which has equal axes)."""
    out = {}
    for i, a in enumerate(view.labels):
        d = sorted((math.dist(view.vectors[i], view.vectors[j]), b)
                   for j, b in enumerate(view.labels) if j != i)
        out[a] = [(b, dist) for dist, b in d[:k]]
    return out


def default_model(registry: Registry, name: str):
    """The named model, else (in the registry's order) NAMELAB_DEFAULT_MODEL or the first with a
    2-D table (its raw plot needs no projection), else the first with any embedding table."""
    if name:
        return pick_model(registry, name, has_embeddings, "embedding table")
    flat = registry.first(lambda m: has_embeddings(m) and (
        m.name == registry.default or m.model.embedding_table().shape[1] == 2))
    return flat or pick_model(registry, None, has_embeddings, "embedding table")


def chosen_letter(raw: str | None, labels: list[str]) -> str | None:
    """The letter searched for ('.' is the boundary), or None when the box is blank."""
    text = (raw or "").strip().lower()
    if not text:
        return None
    if text not in labels:
        raise BadInput(f"letter must be one symbol of the model's vocabulary "
                       f"({''.join(labels)}), got {raw!r}.")
    return text


def kept_variance(view: EmbeddingView) -> float | None:
    """The share of the vectors' variance the map keeps (its axes' shares added), for a map
    of wider than 2-D vectors by a projection; None for t-SNE (it keeps neighbours, not
    variance) and for a 2-D table (shown whole)."""
    p = view.projection
    if view.dim == 2 or p.method == "tsne":
        return None
    return sum(p.explained_variance)


@router.get("/embeddings", response_class=HTMLResponse, summary="Character embeddings page")
@cacheable
@model_thread
def show_embeddings(request: Request, registry: RegistryDep, model: str = "",
                    view: str | None = None, x: str | None = None, y: str | None = None,
                    letter: str | None = None):
    """Each letter's embedding as a labelled point, their similarities, nearest letters; a
    searched letter and its nearest letters highlighted."""
    ctx = {"nav": "embeddings", "title": "Character embeddings", "x": x or "", "y": y or "",
           "letter": letter or "", "views": VIEWS,
           "emb_models": [m for m in registry.models.values() if has_embeddings(m)]}
    m = dim = None  # the error view keeps the form as far as it got: model, view, x, y
    try:
        m = default_model(registry, model)
        dim = m.model.embedding_table().shape[1]
        found = chosen_letter(letter, m.model.vocab.itos)
        dims = chosen_dims(x, y, dim)
        key = chosen_view(view, dims, dim)
        method = {"raw": "raw", "pca": "pca", "tsne": "tsne", "dims": "raw"}[key]
        ev = embedding_view(m, dims if key == "dims" else None, method=method)
        # the same units on both axes for coordinates and PCA (distances are real); t-SNE's
        # two axes have no units to share
        plot = plots.scatter(ev.projection.points, ev.labels, *axis_labels(ev),
                             equal=key != "tsne")
    except USER_ERRORS as e:
        err = page_error(e, registry)
        kept = {"m": m, "dim": dim, "key": (view or "").strip() or ("dims" if x or y else "")}
        return render(request, "embeddings.html", {**ctx, **kept, "error": err}, err.status)
    # Cosines of 2-D vectors are only angles (nearly all +-1): a 2-D table's neighbours are the
    # letters nearest on the plot, and its similarity heatmap would say nothing.
    near = closest(ev) if dim == 2 else None
    sim = similarity_heatmap(ev) if dim > 2 else None
    found_near = (near or ev.neighbours)[found] if found else []
    marks = {found: "found"} | {b: "near" for b, _ in found_near} if found else {}
    return render(request, "embeddings.html", {
        **ctx, "m": m, "dim": dim, "view": ev, "key": key, "plot": plot, "sim": sim,
        "closest": near, "found": found, "found_near": found_near, "marks": marks,
        "kept": kept_variance(ev)})
