"""When a name sounds like it is from: P(decade, sex | name) under a conditional model."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from app.api.render import json_response
from app.api.schemas import NOT_FOUND
from app.data.decades import DECADES, SEXES
from app.domain.params import EraParams
from app.domain.services import era_of
from app.serving.worker import model_thread
from app.web.deps import ModelDep

router = APIRouter(prefix="/api/models/{model}", tags=["scoring"], responses=NOT_FOUND)


class MostLikely(BaseModel):
    decade: int = Field(description="the first year of the most likely decade")
    sex: str = Field(description="F or M")
    probability: float


class EraResponse(BaseModel):
    model: str
    name: str = Field(description="the name as scored (normalised)")
    prior: str
    decades: list[int] = Field(description="the 14 decades' first years: the columns")
    sexes: list[str] = Field(description="F, M: the rows of `posterior`")
    posterior: list[list[float]] = Field(description="P(decade, sex | name), [sex][decade]; "
                                                     "the 28 numbers sum to 1")
    by_decade: list[float] = Field(description="P(decade | name): both sexes summed")
    most_likely: MostLikely
    sentence: str = Field(description="e.g. 'sounds most like the 1920s (girls), 38%'")


@router.get("/era", summary="When a name sounds like it is from", response_model=EraResponse,
            responses={422: {"description": "A bad name or prior, or a model that is not "
                                            "conditional (the message names the kinds that are)"}})
@model_thread
def get_era(m: ModelDep, q: Annotated[EraParams, Query()]) -> Response:
    """Bayes over the conditional model's P(name | decade, sex) for the 14 decades of
    1880-2017 and both sexes, with the prior of the records (births) or uniform."""
    e = era_of(m, q.name, q.prior)
    return json_response({
        "model": m.name, "name": e.name, "prior": e.prior, "decades": list(DECADES),
        "sexes": list(SEXES), "posterior": e.posterior, "by_decade": e.by_decade,
        "most_likely": {"decade": e.decade, "sex": e.sex, "probability": e.probability},
        "sentence": e.sentence})
