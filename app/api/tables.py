"""What a model has learnt, as tables: the k most probable names, the bigram table, the
character embeddings."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.api.schemas import (
    NO_TABLE,
    NOT_FOUND,
    BigramTable,
    EmbeddingsResponse,
    TopNameOut,
    TopResponse,
)
from app.domain import services
from app.domain.params import EmbeddingsParams, TopParams
from app.serving.pagecache import cacheable
from app.serving.worker import model_thread
from app.web.deps import ModelDep

router = APIRouter(prefix="/api/models/{model}", tags=["tables"], responses=NOT_FOUND)


@router.get("/top", summary="The k most probable names")
@model_thread
def top_names(m: ModelDep, q: Annotated[TopParams, Query()]) -> TopResponse:
    """Exactly the k most probable names (optionally with a prefix, and that fit suffix,
    contains, pattern and min_len as sampling's do), best first, found by best-first search over
    prefixes (A* with the exact bound of the fitting completions for the bigram kinds) with an
    effort bound of 20,000 prefixes expanded (`exhausted` says if it ran out), the same on
    every machine; 10 s of model time is a safety net (`timed_out` says if it passed)."""
    top = services.top_names(m, q)
    return TopResponse(model=m.name, prefix=top.prefix, exhausted=top.exhausted,
                       timed_out=top.timed_out, names=[TopNameOut.of(t) for t in top.names])


@router.get("/bigram", summary="The bigram table", responses=NO_TABLE)
@cacheable
@model_thread
def get_bigram_table(m: ModelDep) -> BigramTable:
    """P(next | previous) for every pair of symbols, and the counts for a count-based bigram
    (null for a neural bigram). 409 for models without a bigram table."""
    labels, counts, probs = services.bigram_table(m)
    return BigramTable(model=m.name, labels=labels, counts=counts, probs=probs)


@router.get("/embeddings", summary="The character embeddings", responses=NO_TABLE)
@cacheable
@model_thread
def get_embeddings(m: ModelDep, q: Annotated[EmbeddingsParams, Query()]) -> EmbeddingsResponse:
    """The embedding vectors, a 2-D projection (raw when 2-D, PCA otherwise) and each letter's
    nearest letters by cosine similarity. 409 for models without embeddings."""
    return EmbeddingsResponse.of(m.name, services.embedding_view(m, k=q.k))
