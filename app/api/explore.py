"""Looking inside a model: the next-letter distribution after a prefix, the attention weights."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import Response

from app.api.render import json_response
from app.api.schemas import NOT_FOUND, AttentionResponse, ErrorMessage, NextResponse
from app.domain.explorer import NoAttention, attention_view, next_view, versus_view
from app.domain.params import NameParam, NextParams
from app.serving.pagecache import cacheable
from app.serving.worker import model_thread
from app.web.deps import ModelDep

router = APIRouter(prefix="/api/models/{model}", tags=["looking inside"], responses=NOT_FOUND)

NO_ATTENTION = {404: {"model": ErrorMessage,
                      "description": "No such model, or its kind has no attention (the message "
                                     "names the kinds that do)."}}


@router.get("/next", summary="The next-letter distribution", response_model=NextResponse)
@cacheable
@model_thread
def next_letter(m: ModelDep, q: Annotated[NextParams, Query()]) -> Response:
    """Every symbol's probability after `prefix` (empty: the first letter), most probable
    first, what sampling with `temperature`, `top_k`, `top_p` and `min_p` (in that order, as
    the sampler applies them) under the constraints (`suffix`, `contains`, `pattern`,
    `min_len`, `max_len`) draws it with, whether the knobs cut it and whether it can still
    fit; the prefix's own steps and log P; the greedy continuation. A conditional model reads
    `decade` and `sex`, and with `vs_decade` gives the symbols under that decade too."""
    v, vs = next_view(m, q), versus_view(m, q)
    return json_response({
        "model": m.name, "prefix": v.prefix, **q.model_dump(exclude={"prefix"}),
        "exact": v.exact, "constraint_mass": v.mass,
        "log_prob": v.log_prob, "nll_per_letter": v.nll_per_letter, "steps": v.steps,
        "greedy": v.greedy, "symbols": v.symbols,
        "versus": None if vs is None else vs.symbols})


@router.get("/attention", summary="The Transformer's attention over a name",
            response_model=AttentionResponse, responses=NO_ATTENTION)
@cacheable
@model_thread
def get_attention(m: ModelDep, q: Annotated[NameParam, Query()]) -> Response:
    """For each layer and head, how much each position (the start mark, then each letter)
    attends to itself and to each earlier position; also the average over heads."""
    try:
        a = attention_view(m, q.name)
    except NoAttention as e:
        raise HTTPException(status_code=404, detail=str(e)) from None
    return json_response({"model": m.name, "name": a.name, "positions": a.positions,
                          "weights": a.weights, "mean": a.mean})
